package localpg_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/localpg"
)

// TestStartStopReuse starts a private cluster, connects, finds it again
// when started twice, and stops it.
func TestStartStopReuse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postgres cluster")
	}
	if _, err := localpg.FindBinaries(); err != nil {
		t.Skipf("no Postgres binaries: %v", err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	// As root the cluster runs as the postgres user, who must reach dir.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	c, err := localpg.Start(ctx, dir, localpg.Options{Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	conn.Close(ctx)
	again, err := localpg.Start(ctx, dir, localpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Started() || again.Port() != c.Port() || again.URL() != c.URL() {
		t.Errorf("second Start: started=%v port=%d, want the running cluster on %d reused", again.Started(), again.Port(), c.Port())
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, c.URL()); err == nil {
		t.Errorf("cluster still accepts connections after Stop")
	}
}
