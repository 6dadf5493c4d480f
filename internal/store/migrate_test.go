package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
)

// schemaOf describes the public schema: every relation, column, constraint
// and index, and the analyst role's privileges, one line each, sorted.
func schemaOf(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'relation ' || c.relname || ' ' || c.relkind::text FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname NOT LIKE 'schema_migrations%'
		UNION ALL
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
		WHERE connamespace = 'public'::regnamespace AND conrelid <> 'schema_migrations'::regclass
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
		UNION ALL
		SELECT 'grant ' || table_name || ' ' || privilege_type FROM information_schema.role_table_grants
		WHERE grantee = 'snapcompose_analyst'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestMigrateUpDownUp runs every migration down and up again, one step at a
// time and all at once, and checks that down leaves nothing behind and up
// rebuilds exactly the same schema.
func TestMigrateUpDownUp(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	want := schemaOf(t, pool)
	if len(want) < 100 {
		t.Fatalf("the migrated schema has only %d objects", len(want))
	}
	g, err := store.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	wantVersion := func(want uint) {
		t.Helper()
		v, dirty, err := g.Version()
		if err != nil || dirty || v != want {
			t.Fatalf("got version %d (dirty %v, err %v), want %d", v, dirty, err, want)
		}
	}
	latest := store.MigrationVersion()
	wantVersion(latest)

	// Step by step down to nothing.
	for v := latest; v > 0; v-- {
		if err := g.Down(); err != nil {
			t.Fatalf("migrating down from %d: %v", v, err)
		}
		wantVersion(v - 1)
	}
	if left := schemaOf(t, pool); len(left) != 0 {
		t.Errorf("down left %d objects behind, first %q", len(left), left[0])
	}
	var grants int
	err = pool.QueryRow(context.Background(), `
		SELECT count(*) FROM pg_namespace WHERE nspname = 'public' AND nspacl::text LIKE '%snapcompose_analyst%'`).Scan(&grants)
	if err != nil || grants != 0 {
		t.Errorf("down left the analyst role's grant on schema public (%d, %v)", grants, err)
	}
	if err := store.New(pool).Ready(context.Background()); err == nil {
		t.Error("Ready says an unmigrated database is ready")
	}

	// Up again from nothing: the same schema.
	if err := g.Up(); err != nil {
		t.Fatalf("migrating up: %v", err)
	}
	wantVersion(latest)
	if got := schemaOf(t, pool); !equalLines(got, want) {
		t.Errorf("the schema differs after down and up:\n%s", diffLines(got, want))
	}
	if err := store.New(pool).Ready(context.Background()); err != nil {
		t.Errorf("Ready after up: %v", err)
	}

	// And all at once, twice.
	for range 2 {
		if err := g.DownAll(); err != nil {
			t.Fatalf("migrating all the way down: %v", err)
		}
		wantVersion(0)
		if err := g.Up(); err != nil {
			t.Fatalf("migrating up: %v", err)
		}
	}
	if got := schemaOf(t, pool); !equalLines(got, want) {
		t.Errorf("the schema differs after down and up:\n%s", diffLines(got, want))
	}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func diffLines(got, want []string) string {
	in := func(s []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var out string
	for _, x := range want {
		if !g[x] {
			out += "- " + x + "\n"
		}
	}
	for _, x := range got {
		if !w[x] {
			out += "+ " + x + "\n"
		}
	}
	return out
}
