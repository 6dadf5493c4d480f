package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

// asAnalyst runs query as role snapcompose_analyst, in a transaction that
// is rolled back, and returns the error.
func asAnalyst(ctx context.Context, st *store.Store, query string) error {
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE snapcompose_analyst"); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

func relations(t *testing.T, st *store.Store, kind string) []string {
	t.Helper()
	rows, err := st.Pool().Query(t.Context(), `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = $1 ORDER BY 1`, kind)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func wantPermissionDenied(t *testing.T, err error, query string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("%s as analyst: got %v, want permission denied", query, err)
	}
}

// TestAnalystRole checks that snapcompose_analyst reads every view and
// nothing else, and writes nothing.
func TestAnalystRole(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	planned(t, st, newFixture(), false) // so the views have rows to compute

	var canLogin, super bool
	err := st.Pool().QueryRow(ctx, `SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'snapcompose_analyst'`).Scan(&canLogin, &super)
	if err != nil || canLogin || super {
		t.Errorf("role snapcompose_analyst: login %v, superuser %v (%v); want neither", canLogin, super, err)
	}

	views := relations(t, st, "v")
	for _, v := range []string{"analyst_compositions", "analyst_outcome_by_strategy", "analyst_conflict_kinds", "analyst_source_reliability", "analyst_model_versions"} {
		if !slices.Contains(views, v) {
			t.Errorf("view %s is missing", v)
		}
	}
	for _, v := range views {
		t.Run("view "+v, func(t *testing.T) {
			t.Parallel()
			ident := pgx.Identifier{v}.Sanitize()
			if err := asAnalyst(ctx, st, "SELECT * FROM "+ident); err != nil {
				t.Errorf("SELECT from %s as analyst: %v", v, err)
			}
			// Postgres refuses writes to a view that cannot be updated
			// before it checks privileges, so the error may say that
			// instead; the role must hold no write privilege either way.
			for _, q := range []string{"INSERT INTO " + ident + " DEFAULT VALUES", "DELETE FROM " + ident} {
				err := asAnalyst(ctx, st, q)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "42501" && pgErr.Code != "55000" {
					t.Errorf("%s as analyst: got %v, want permission denied or cannot write to view", q, err)
				}
			}
			wantNoPrivilege(t, st, v, "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
		})
	}
	tables := relations(t, st, "r")
	if len(tables) < 17 {
		t.Fatalf("found only %d tables: %v", len(tables), tables)
	}
	for _, table := range tables {
		t.Run("table "+table, func(t *testing.T) {
			t.Parallel()
			ident := pgx.Identifier{table}.Sanitize()
			col := plainColumn(t, st, table)
			for _, q := range []string{
				"SELECT * FROM " + ident + " LIMIT 1",
				"SELECT count(*) FROM " + ident,
				"SELECT " + col + " FROM " + ident,
				"INSERT INTO " + ident + " DEFAULT VALUES",
				"UPDATE " + ident + " SET " + col + " = " + col,
				"DELETE FROM " + ident,
				"TRUNCATE " + ident,
			} {
				wantPermissionDenied(t, asAnalyst(ctx, st, q), q)
			}
			wantNoPrivilege(t, st, table, "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
		})
	}
	t.Run("no new objects", func(t *testing.T) {
		t.Parallel()
		q := "CREATE TABLE analyst_scratch (x int)"
		wantPermissionDenied(t, asAnalyst(ctx, st, q), q)
		q = "CREATE VIEW analyst_scratch AS SELECT 1"
		wantPermissionDenied(t, asAnalyst(ctx, st, q), q)
	})
}

// plainColumn returns a column of table that an UPDATE may set to itself
// (not an identity column).
func plainColumn(t *testing.T, st *store.Store, table string) string {
	t.Helper()
	var col string
	err := st.Pool().QueryRow(t.Context(), `
		SELECT column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND is_identity = 'NO' AND is_generated = 'NEVER'
		ORDER BY ordinal_position LIMIT 1`, table).Scan(&col)
	if err != nil {
		t.Fatal(err)
	}
	return pgx.Identifier{col}.Sanitize()
}

// wantNoPrivilege fails t if the analyst role holds any of privileges on
// relation, on the whole of it or on any column.
func wantNoPrivilege(t *testing.T, st *store.Store, relation string, privileges ...string) {
	t.Helper()
	for _, p := range privileges {
		var has bool
		err := st.Pool().QueryRow(t.Context(), `
			SELECT has_table_privilege('snapcompose_analyst', $1::regclass, $2)
				OR ($2 IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AND has_any_column_privilege('snapcompose_analyst', $1::regclass, $2))`,
			pgx.Identifier{relation}.Sanitize(), p).Scan(&has)
		if err != nil {
			t.Fatal(err)
		}
		if has {
			t.Errorf("the analyst role holds %s on %s", p, relation)
		}
	}
}

// TestAnalystViews checks what the views say about a small, known history.
func TestAnalystViews(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	if _, err := st.InsertModelVersion(ctx, model("m1", []byte("bytes"))); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 4, 1, 10, 0, 0, 0, time.UTC)
	// Three PRIORITY compositions on one day: healthy, failed, still running.
	var ids []string
	for i, final := range []store.StatusUpdate{
		{Status: domain.StatusSucceeded},
		{Status: domain.StatusFailed, Error: "boom"},
		{Status: domain.StatusRunning},
	} {
		f := newFixture()
		id := newComposition(t, st, f)
		rec := record(t, f.manifest, f.snaps, i == 0)
		if i == 0 {
			rec.ModelVersion = "m1"
		}
		if err := st.RecordPlan(ctx, id, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, `UPDATE compositions SET created_at = $2 WHERE id = $1`, id, day); err != nil {
			t.Fatal(err)
		}
		if err := st.SetCompositionStatus(ctx, id, final); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	verdicts := []string{store.VerdictHealthy, store.VerdictFailed}
	for i, v := range verdicts {
		if _, err := st.RecordOutcome(ctx, store.Outcome{CompositionID: ids[i], Verdict: store.VerdictDegraded, Reporter: "m", ReportedAt: day.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		// The latest report is the verdict.
		if _, err := st.RecordOutcome(ctx, store.Outcome{CompositionID: ids[i], Verdict: v, Reporter: "m", ReportedAt: day.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	var compositions, finished, succeeded, withVerdict, healthy int
	var successRate, healthyRate float64
	err := st.Pool().QueryRow(ctx, `
		SELECT compositions, finished, succeeded, success_rate, with_verdict, healthy, healthy_rate
		FROM analyst_outcome_by_strategy WHERE day = '2025-04-01' AND strategy = 'PRIORITY'`).
		Scan(&compositions, &finished, &succeeded, &successRate, &withVerdict, &healthy, &healthyRate)
	if err != nil {
		t.Fatal(err)
	}
	if compositions != 3 || finished != 2 || succeeded != 1 || successRate != 0.5 || withVerdict != 2 || healthy != 1 || healthyRate != 0.5 {
		t.Errorf("outcome by strategy: %d %d %d %v %d %d %v", compositions, finished, succeeded, successRate, withVerdict, healthy, healthyRate)
	}

	var conflicts, inCompositions int
	err = st.Pool().QueryRow(ctx, `
		SELECT sum(conflicts), max(compositions) FROM analyst_conflict_kinds WHERE day = '2025-04-01'`).Scan(&conflicts, &inCompositions)
	if err != nil {
		t.Fatal(err)
	}
	var wantConflicts int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM conflicts`).Scan(&wantConflicts)
	if conflicts != wantConflicts || inCompositions != 3 {
		t.Errorf("conflict kinds: %d conflicts in up to %d compositions, want %d in 3", conflicts, inCompositions, wantConflicts)
	}

	var used, sourceHealthy int
	var share float64
	err = st.Pool().QueryRow(ctx, `
		SELECT compositions, healthy, healthy_share FROM analyst_source_reliability WHERE source_ref = 'live:prod-1:/srv/app'`).
		Scan(&used, &sourceHealthy, &share)
	if err != nil {
		t.Fatal(err)
	}
	if used != 3 || sourceHealthy != 1 || share != 0.5 {
		t.Errorf("source reliability: %d compositions, %d healthy, share %v", used, sourceHealthy, share)
	}

	var modelCompositions, modelHealthy int
	err = st.Pool().QueryRow(ctx, `SELECT compositions, healthy FROM analyst_model_versions WHERE version = 'm1'`).Scan(&modelCompositions, &modelHealthy)
	if err != nil || modelCompositions != 1 || modelHealthy != 1 {
		t.Errorf("model versions: %d compositions, %d healthy (%v)", modelCompositions, modelHealthy, err)
	}
}
