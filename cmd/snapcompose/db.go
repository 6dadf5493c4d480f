package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/localpg"
	"github.com/snapcompose/snapcompose/internal/store"
)

// defaultDataDir is where serve keeps its managed Postgres unless told otherwise.
const defaultDataDir = ".snapcompose"

// db manages the private Postgres cluster: `db start` prints the URL of a
// running cluster (starting it if needed), `db stop` stops it. make test
// uses these when TEST_DATABASE_URL is not set.
func (m *Main) db(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "start" && args[0] != "stop") {
		return domain.Errorf(domain.EINVALID, "db: want `db start` or `db stop`")
	}
	fs := m.flags("db " + args[0])
	dataDir := fs.String("data-dir", defaultDataDir, "`directory` holding the managed cluster (in its postgres/ subdirectory)")
	ephemeral := fs.Bool("ephemeral", false, "trade durability for speed (fsync off), for test clusters")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	dir := filepath.Join(*dataDir, "postgres")
	if args[0] == "stop" {
		return localpg.StopDir(ctx, dir)
	}
	c, err := localpg.Start(ctx, dir, localpg.Options{Ephemeral: *ephemeral})
	if err != nil {
		return err
	}
	// The URL holds the cluster's password; it goes to stdout for the caller
	// to pass on, never to a log.
	fmt.Fprintln(m.Stdout, c.URL())
	return nil
}

// migrate applies or reverts the embedded migrations.
func (m *Main) migrate(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return domain.Errorf(domain.EINVALID, "migrate: want `migrate up`, `migrate down` or `migrate version`")
	}
	action := args[0]
	fs := m.flags("migrate " + action)
	all := fs.Bool("all", false, "with down: revert every migration, not just the last")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	url := m.getenv("DATABASE_URL")
	if url == "" {
		return domain.Errorf(domain.EINVALID, "migrate: DATABASE_URL is not set")
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	g, err := store.NewMigrator(st.Pool())
	if err != nil {
		return err
	}
	defer g.Close()
	switch action {
	case "up":
		err = g.Up()
	case "down":
		if *all {
			err = g.DownAll()
		} else {
			err = g.Down()
		}
	case "version":
	default:
		return domain.Errorf(domain.EINVALID, "migrate: unknown action %q: want up, down or version", action)
	}
	if err != nil {
		return err
	}
	v, dirty, err := g.Version()
	if err != nil {
		return err
	}
	state := ""
	if dirty {
		state = " (dirty)"
	}
	fmt.Fprintf(m.Stdout, "schema version %d%s; this build expects %d\n", v, state, store.MigrationVersion())
	return nil
}

func (m *Main) getenv(key string) string {
	if m.Getenv != nil {
		return m.Getenv(key)
	}
	return os.Getenv(key)
}
