package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/migrations"
)

// MigrationVersion is the schema version this build expects: the highest
// migration embedded in it.
func MigrationVersion() uint {
	var latest uint
	entries, _ := fs.ReadDir(migrations.FS, ".")
	for _, e := range entries {
		var v uint
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

// MigrationsDigest identifies the embedded migrations, so test templates
// built from one set are never used with another.
func MigrationsDigest() string {
	h := sha256.New()
	entries, _ := fs.ReadDir(migrations.FS, ".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(migrations.FS, n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Migrator applies the embedded migrations to one database.
type Migrator struct {
	m *migrate.Migrate
}

// NewMigrator returns a migrator for the database pool connects to. Close it
// when done; that does not close pool.
func NewMigrator(pool *pgxpool.Pool) (*Migrator, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	return &Migrator{m: m}, nil
}

// Up applies every migration not yet applied.
func (g *Migrator) Up() error { return g.run(g.m.Up) }

// Down reverts the most recent migration.
func (g *Migrator) Down() error { return g.run(func() error { return g.m.Steps(-1) }) }

// DownAll reverts every migration.
func (g *Migrator) DownAll() error { return g.run(g.m.Down) }

// Version returns the applied version and whether a migration failed half
// way (dirty). Version 0 means none is applied.
func (g *Migrator) Version() (uint, bool, error) {
	v, dirty, err := g.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	return v, dirty, err
}

func (g *Migrator) run(f func() error) error {
	if err := f(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return domain.Errorf(domain.EUNAVAILABLE, "the database schema is dirty at version %d (a migration failed half way): fix it by hand, then `snapcompose migrate force`", dirty.Version)
		}
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// Close releases the migrator's connection.
func (g *Migrator) Close() error {
	srcErr, dbErr := g.m.Close()
	return errors.Join(srcErr, dbErr)
}

// Migrate applies every pending migration to the database pool connects to.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	g, err := NewMigrator(pool)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Up()
}
