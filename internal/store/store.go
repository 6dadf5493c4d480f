// Package store keeps snapcompose's history in Postgres: templates,
// compositions and everything decided in them, outcomes, resource usage,
// models, the capacity pool and idempotency keys. It is built on pgx v5.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Store is the Postgres-backed history. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url. It returns EUNAVAILABLE when the
// database cannot be reached; the message never contains the URL, which
// may hold a password.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "DATABASE_URL is not a valid Postgres URL or DSN")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "cannot connect to the database: %v", redact(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, domain.Errorf(domain.EUNAVAILABLE, "cannot reach the database at %s:%d: %v", cfg.ConnConfig.Host, cfg.ConnConfig.Port, redact(err))
	}
	return &Store{pool: pool}, nil
}

// New wraps an existing pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool returns the underlying pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ready reports whether the database answers and holds the schema this
// build expects. It returns EUNAVAILABLE saying what is wrong otherwise.
func (s *Store) Ready(ctx context.Context) error {
	var version int64
	var dirty bool
	err := s.pool.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations LIMIT 1").Scan(&version, &dirty)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.EUNAVAILABLE, "database schema is not migrated, this build expects version %d: run `snapcompose migrate up`", MigrationVersion())
	}
	if err != nil {
		return domain.Errorf(domain.EUNAVAILABLE, "database not ready: %v", redact(err))
	}
	if dirty {
		return domain.Errorf(domain.EUNAVAILABLE, "database schema is dirty at version %d", version)
	}
	if want := MigrationVersion(); uint(version) != want {
		return domain.Errorf(domain.EUNAVAILABLE, "database schema is at version %d, this build expects %d: run `snapcompose migrate up`", version, want)
	}
	return nil
}

// redact returns err's text without connection details that may carry a
// password (pgx errors can quote the connection string).
func redact(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return errors.Unwrap(connErr).Error()
	}
	return err.Error()
}

// ErrUnavailable marks an error of a database that could not be reached or
// went away (a restart, a lost connection): the work is worth doing again
// once it is back. Such errors are EUNAVAILABLE.
var ErrUnavailable = errors.New("the database is unavailable")

// unavailable reports whether err is the database being out of reach.
func unavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &pgErr):
		// 08: connection exception; 57P01-03: admin or crash shutdown,
		// cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection refused")
}

// unavailableError is an EUNAVAILABLE error that wraps ErrUnavailable.
type unavailableError struct {
	err *domain.Error
}

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{e.err, ErrUnavailable} }

// constraintError turns a Postgres constraint violation into an application
// error that names what was violated; application errors pass through as
// they are, and other errors wrapped.
func constraintError(op string, err error) error {
	var appErr *domain.Error
	if errors.As(err, &appErr) {
		return err // already says what went wrong
	}
	if unavailable(err) {
		return unavailableError{err: domain.Errorf(domain.EUNAVAILABLE, "%s: the database is unavailable (%s); try again shortly", op, redact(err))}
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch pgErr.Code {
	case "23505": // unique_violation
		return domain.Errorf(domain.ECONFLICT, "%s: already exists (%s)", op, pgErr.ConstraintName)
	case "23503": // foreign_key_violation
		if strings.HasPrefix(pgErr.Message, "update or delete on table") {
			// The row is still referenced, not referring to something missing.
			return domain.Errorf(domain.ECONFLICT, "%s: still in use (%s)", op, pgErr.ConstraintName)
		}
		return domain.Errorf(domain.ENOTFOUND, "%s: refers to something that does not exist (%s)", op, pgErr.ConstraintName)
	case "23514", "23502", "22P02", "22003", "22001": // check, not null, invalid text, out of range, too long
		detail := pgErr.ConstraintName
		if detail == "" {
			detail = pgErr.ColumnName
		}
		return domain.Errorf(domain.EINVALID, "%s: %s (%s)", op, pgErr.Message, detail)
	}
	return fmt.Errorf("%s: %w", op, err)
}
