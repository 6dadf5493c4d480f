package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
)

// serveArgsEnv, set in a child of the test binary, makes it run
// "snapcompose serve" with the JSON-encoded arguments in it instead of the
// tests: a server process the test can kill.
const serveArgsEnv = "SNAPCOMPOSE_TEST_SERVE_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(serveArgsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		main2(args)
	}
	os.Exit(m.Run())
}

// main2 is main with the given arguments.
func main2(args []string) {
	os.Args = append([]string{"snapcompose"}, args...)
	main()
}

// serverProcess starts the test binary as a server process on addr.
func serverProcess(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	raw, _ := json.Marshal(append([]string{"serve"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveArgsEnv+"="+string(raw))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	return cmd
}

func waitUp(t *testing.T, base string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up", base)
		}
	}
}

// TestKilledServerJobFinishesOnce: a server process killed (SIGKILL) while
// a composition's job runs — its live host is not answering — is
// restarted; the restarted one rescues the job and finishes it exactly
// once: one plan, one reservation, one environment.
func TestKilledServerJobFinishesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for River to rescue the job (about 30s)")
	}
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	host := startLiveHost(t)
	host.hang.Store(true)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	os.WriteFile(tokens, []byte(fmt.Sprintf("tokens:\n  - {name: c, role: composer, sha256: %s}\n", httpapi.HashToken(testTokens[httpapi.Composer]))), 0o600)
	env := map[string]string{"DATABASE_URL": dbURL, "SNAPCOMPOSE_TOKENS_FILE": tokens}
	for k, v := range host.env {
		env[k] = v
	}
	dataDir := t.TempDir()
	port := freePort(t)
	base := "http://" + port
	args := []string{"--addr", port, "--data-dir", dataDir, "--model-poll", "0", "--catalog", seedCatalog, "--hosts", host.hosts,
		"--workers", "1", "--job-timeout", "4s", "--job-rescue-after", "5s"}
	first := serverProcess(t, env, args...)
	waitUp(t, base)

	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile("../../examples/seed/manifest.json")
	seed = bytes.Replace(seed, []byte(`"AI_AGENT"`), []byte(`"PRIORITY"`), 1)
	code, body, _ := submit(t, c, base, seed, "crash-1")
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, body)
	}
	id := body["id"].(string)
	for deadline := time.Now().Add(30 * time.Second); host.hits.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job never reached the live host")
		}
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	host.hang.Store(false)

	serverProcess(t, env, args...)
	waitUp(t, base)
	final := waitFinished(t, st, id, 120*time.Second)
	if final.Status != domain.StatusSucceeded {
		t.Fatalf("after the restart: %s %q", final.Status, final.Error)
	}
	ctx := context.Background()
	var attempt int
	var by []string
	if err := st.Pool().QueryRow(ctx, `SELECT attempt, attempted_by FROM river_job WHERE args->>'composition_id' = $1`, id).Scan(&attempt, &by); err != nil {
		t.Fatal(err)
	}
	var plans, reservations, compositions int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM compositions`).Scan(&compositions)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM conflicts WHERE composition_id = $1 AND ordinal = 0`, id).Scan(&plans)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM reservations WHERE composition_id = $1`, id).Scan(&reservations)
	if attempt != 2 || len(by) != 2 || by[0] == by[1] || compositions != 1 || plans != 1 || reservations != 1 {
		t.Errorf("attempt %d by %v; %d compositions, plan recorded %d times, %d reservations; want 2 attempts by two processes, 1, 1, 1",
			attempt, by, compositions, plans, reservations)
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "compositions"))
	if len(entries) != 1 || entries[0].Name() != id {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output directory holds %s, want just %s", strings.Join(names, ", "), id)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "compositions", id, "compose.yaml")); err != nil {
		t.Error(err)
	}
}

// freePort returns a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
