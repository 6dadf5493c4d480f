// Package pgtest gives each test its own real, migrated Postgres database.
//
// The server comes from TEST_DATABASE_URL, which `make test` sets after
// starting a private cluster when it is not set already. Without it a test
// is skipped, except under CI=true, where a missing database fails the run.
// The schema is migrated once into a template database (named after the
// migrations' digest); each test then gets a copy, dropped at cleanup.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snapcompose/snapcompose/internal/store"
)

// URL returns TEST_DATABASE_URL, skipping the test when it is unset (or
// failing it when CI=true).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_DATABASE_URL is not set and CI=true: run the tests with `make test`, which starts a database")
		}
		t.Skip("TEST_DATABASE_URL is not set: `make test` starts a database and sets it")
	}
	return u
}

// NewPool returns a pool on a fresh migrated database of the test's own.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := NewDatabase(t)
	return pool
}

// NewDatabase is NewPool that also returns the new database's URL.
func NewDatabase(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	base := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to the test database server: %v", err)
	}
	defer admin.Close(context.Background())
	template := "snapcompose_tmpl_" + store.MigrationsDigest()
	if err := ensureTemplate(ctx, admin, base, template); err != nil {
		t.Fatalf("preparing template database %s: %v", template, err)
	}
	name := "t_" + randomHex(8)
	if err := createFrom(ctx, admin, name, template); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	dbURL := withDatabase(base, name)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
	})
	return pool, dbURL
}

// ensureTemplate creates and migrates the template database once, under an
// advisory lock so parallel test processes agree.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, base, template string) error {
	const lockKey = 0x5e7c0de // any constant shared by every test process
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockKey)
	var ready bool
	err := admin.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", template).Scan(&ready)
	if err == nil && ready {
		return nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	// Absent, or left half-made by a crashed run: start over.
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{template}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDatabase(base, template))
	if err != nil {
		return err
	}
	err = store.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	// Marking it a template last means only complete templates are used.
	_, err = admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{template}.Sanitize()+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
	return err
}

func createFrom(ctx context.Context, admin *pgx.Conn, name, template string) error {
	for attempt := 0; ; attempt++ {
		_, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize())
		var pgErr *pgconn.PgError
		// 55006: the template is in use by another CREATE DATABASE; retry.
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && attempt < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return err
	}
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		// A key=value DSN.
		return base + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
