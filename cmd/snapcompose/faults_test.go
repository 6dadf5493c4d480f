package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/localpg"
	"github.com/snapcompose/snapcompose/internal/store"
)

// TestDatabaseRestartMidComposition: Postgres stops while a composition's
// job waits on a live host. Meanwhile the API answers 503 with
// Retry-After, naming the database; once Postgres is back (on its port),
// the job is rescued and finishes, exactly once: one composition, one
// plan, one reservation.
func TestDatabaseRestartMidComposition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts a Postgres cluster")
	}
	if _, err := localpg.FindBinaries(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no Postgres binaries: %v", err)
	}
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // as root, Postgres runs as postgres
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cluster, err := localpg.Start(ctx, dir, localpg.Options{Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop(context.Background()) })
	port := cluster.Port()
	host := startLiveHost(t)
	host.hang.Store(true)
	base := startServerEnv(t, cluster.URL(), host.env, "--model-poll", "0", "--catalog", seedCatalog, "--hosts", host.hosts,
		"--pool", "restart", "--job-timeout", "20s", "--job-rescue-after", "21s")
	st, err := store.Open(ctx, cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	unlimitedPool(t, st, "restart")
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile("../../examples/seed/manifest.json")
	seed = []byte(strings.Replace(string(seed), `"AI_AGENT"`, `"PRIORITY"`, 1))
	code, body, _ := submit(t, c, base, seed, "restart-1")
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, body)
	}
	id := body["id"].(string)
	for deadline := time.Now().Add(30 * time.Second); host.hits.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job never reached the live host")
		}
	}

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	host.unblock() // the capture is retried and answered; recording the plan then finds no database
	for _, path := range []string{"/readyz", "/v1/compositions/" + id} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Composer])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 512)
		n, _ := resp.Body.Read(raw)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(raw[:n]), "database") {
			t.Errorf("GET %s with the database down = %d (Retry-After %q) %s", path, resp.StatusCode, resp.Header.Get("Retry-After"), raw[:n])
		}
	}
	time.Sleep(2 * time.Second) // the attempt hits its own errors meanwhile

	restarted, err := localpg.Start(ctx, dir, localpg.Options{Ephemeral: true, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Stop(context.Background()) })
	final := waitFinished(t, st, id, 3*time.Minute)
	if final.Status != domain.StatusSucceeded {
		t.Fatalf("after the restart: %s %q", final.Status, final.Error)
	}
	var compositions, plans, reservations, attempts int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM compositions`).Scan(&compositions)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM conflicts WHERE composition_id = $1 AND ordinal = 0`, id).Scan(&plans)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM reservations WHERE composition_id = $1`, id).Scan(&reservations)
	st.Pool().QueryRow(ctx, `SELECT attempt FROM river_job WHERE args->>'composition_id' = $1`, id).Scan(&attempts)
	t.Logf("finished after the restart in %d attempts", attempts)
	if compositions != 1 || plans != 1 || reservations != 1 || attempts < 2 {
		t.Errorf("%d compositions, plan recorded %d times, %d reservations, %d attempts; want 1, 1, 1, 2 or more", compositions, plans, reservations, attempts)
	}
}
