package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/snapagent"
	"github.com/snapcompose/snapcompose/internal/store"
)

// liveHost runs a real snapagent on loopback serving a copy of the seed's
// live tree, and returns a hosts file for production_server_1 and the
// environment its token comes from. While hang is set, captures block
// until the caller goes away, and hits counts the ones that arrived.
type liveHost struct {
	hosts   string
	env     map[string]string
	hang    atomic.Bool
	hits    atomic.Int32
	release chan struct{} // closed by unblock: hanging captures answer 503
}

// unblock stops hanging: the captures waiting now are answered 503 (the
// agent is busy: the caller retries), later ones as usual.
func (h *liveHost) unblock() {
	h.hang.Store(false)
	close(h.release)
}

func startLiveHost(t *testing.T) *liveHost {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(base, "hostfs")
	writeTree(t, rootfs, map[string]string{
		"var/app/config/app.yaml": "listen: 127.0.0.1:9090\n",
		"var/app/data/orders.csv": "order_id,total\n1,9.99\n",
		"var/app/VERSION":         "1.4.2\n",
	})
	const token = "live-host-token-0123456789"
	agent, err := snapagent.New(snapagent.Config{Roots: []string{rootfs}, Token: token, Hostname: "production_server_1"})
	if err != nil {
		t.Fatal(err)
	}
	h := &liveHost{env: map[string]string{"SNAPCOMPOSE_TEST_AGENT_TOKEN": token}, release: make(chan struct{})}
	handler := agent.Handler()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/capture" {
			h.hits.Add(1)
			if h.hang.Load() {
				select {
				case <-r.Context().Done():
				case <-stop:
				case <-h.release:
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusServiceUnavailable)
					io.WriteString(w, `{"code": "unavailable", "message": "busy: try again"}`)
				}
				return
			}
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // before srv.Close: a hanging capture ends
	h.hosts = writeTemp(t, "hosts.yaml", fmt.Sprintf(
		"hosts:\n  production_server_1:\n    url: %s\n    token_env: SNAPCOMPOSE_TEST_AGENT_TOKEN\n    rootfs: %s\n", srv.URL, rootfs))
	return h
}

// unlimitedPool makes capacity pool name too large to ever refuse.
func unlimitedPool(t testing.TB, st *store.Store, name string) {
	t.Helper()
	if err := st.UpsertPool(context.Background(), name, domain.Resources{CPUMillicores: 1 << 40, MemoryBytes: 1 << 60, DiskBytes: 1 << 60}); err != nil {
		t.Fatal(err)
	}
}

// composeOK POSTs manifest body as c and waits for its composition to
// succeed.
func composeOK(t testing.TB, c *apitest.Client, base string, st *store.Store, body []byte) (string, *store.Composition) {
	t.Helper()
	code, resp, _ := submit(t, c, base, body, "")
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, resp)
	}
	id := resp["id"].(string)
	final := waitFinished(t, st, id, 60*time.Second)
	if final.Status != domain.StatusSucceeded {
		t.Fatalf("%s %q", final.Status, final.Error)
	}
	return id, final
}

// writeTree writes files (path relative to root: content) under root.
func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// submit POSTs manifest body as the composer, with an Idempotency-Key when
// key is not "", and returns the status and the decoded answer.
func submit(t testing.TB, c *apitest.Client, base string, body []byte, key string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, raw := c.Do(t, req)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST /v1/compositions: %v: %s", err, raw)
	}
	return resp.StatusCode, out, resp.Header
}

// waitFinished polls composition id in st until it finishes.
func waitFinished(t testing.TB, st *store.Store, id string, within time.Duration) *store.Composition {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := st.GetComposition(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Final() {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("composition %s is still %s after %s", id, c.Status, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func openTestStore(t testing.TB, url string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// TestComposeSeedOverHTTP: the seed manifest — two templates and a live
// host behind a real snapagent, settled by AI_AGENT with the shipped model
// — is composed as a durable job, provisioned against the pool and
// instantiated; the archive's compose.yaml loads back with compose-go.
// Retries with an Idempotency-Key, concurrent ones too, make one
// composition; the key with another body is refused.
func TestComposeSeedOverHTTP(t *testing.T) {
	t.Parallel()
	agenttest.Library(t)
	_, dbURL := pgtest.NewDatabase(t)
	host := startLiveHost(t)
	base := startServerEnv(t, dbURL, host.env, "--model", agenttest.ModelPath(), "--model-poll", "0",
		"--catalog", seedCatalog, "--hosts", host.hosts, "--pool", "seed-pool")
	st := openTestStore(t, dbURL)
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, err := os.ReadFile("../../examples/seed/manifest.json")
	if err != nil {
		t.Fatal(err)
	}

	// Ten identical requests at once with one key: one composition.
	const dup = 10
	ids := make([]string, dup)
	var wg sync.WaitGroup
	for i := range dup {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, _ := submit(t, c, base, seed, "seed-1")
			if code != http.StatusAccepted {
				t.Errorf("POST = %d %v", code, body)
				return
			}
			ids[i], _ = body["id"].(string)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("concurrent retries with one key made compositions %v", ids)
		}
	}
	id := ids[0]
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM compositions`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d compositions recorded (%v), want 1", n, err)
	}
	final := waitFinished(t, st, id, 90*time.Second)
	if final.Status != domain.StatusSucceeded {
		t.Fatalf("composition %s, error %q", final.Status, final.Error)
	}

	// A retry after it finished answers with it; another body is refused.
	code, body, hdr := submit(t, c, base, seed, "seed-1")
	if code != http.StatusAccepted || body["id"] != id || hdr.Get("Idempotent-Replayed") != "true" || body["status"] != "succeeded" {
		t.Errorf("a retry = %d %v %v", code, body["id"], hdr)
	}
	other := bytes.Replace(seed, []byte(`"Custom Environment"`), []byte(`"Another"`), 1)
	if code, body, _ := submit(t, c, base, other, "seed-1"); code != http.StatusConflict || !strings.Contains(fmt.Sprint(body["message"]), "Idempotency-Key") {
		t.Errorf("the key with another body = %d %v, want 409 naming the Idempotency-Key", code, body)
	}

	// Status, stage timings, the plan and the job (River marks it
	// completed just after the composition succeeds).
	var got map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, got, _ = getJSON(t, base+"/v1/compositions/"+id)
		if job, _ := got["job"].(map[string]any); job["state"] == "completed" || time.Now().After(deadline) {
			break
		}
	}
	timings, _ := got["timings_ms"].(map[string]any)
	for _, stage := range []string{"compose", "record", "provision", "instantiate", "total"} {
		if _, ok := timings[stage]; !ok {
			t.Errorf("timings lack %s: %v", stage, timings)
		}
	}
	job, _ := got["job"].(map[string]any)
	if job["state"] != "completed" || job["attempt"] != float64(1) {
		t.Errorf("job = %v", job)
	}
	plan, _ := got["plan"].(map[string]any)
	if plan == nil || got["model_version"] != nil && got["model_version"] != "" {
		// The shipped model file is not in the registry: no version to name.
		t.Errorf("plan %v, model_version %v", plan != nil, got["model_version"])
	}
	// What was decided is in the history, features and all.
	var decisions, withFeatures int
	if err := st.Pool().QueryRow(context.Background(), `
		SELECT count(DISTINCT cd.conflict_id), count(*) FILTER (WHERE cd.features IS NOT NULL)
		FROM candidates cd JOIN conflicts cf ON cf.id = cd.conflict_id WHERE cf.composition_id = $1`, id).
		Scan(&decisions, &withFeatures); err != nil {
		t.Fatal(err)
	}
	if decisions != len(plan["conflicts"].([]any)) || withFeatures == 0 {
		t.Errorf("history: %d decisions with %d featured candidates; the plan has %d conflicts", decisions, withFeatures, len(plan["conflicts"].([]any)))
	}

	// Measured, stage by stage.
	_, metrics := c.Get(t, base+"/metrics")
	for _, stage := range []string{"compose", "record", "provision", "instantiate"} {
		if want := `snapcompose_compose_stage_duration_seconds_count{stage="` + stage + `"} 1`; !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Provisioned: the pool holds the plan's totals.
	usage, err := st.PoolUsage(context.Background(), "seed-pool")
	if err != nil {
		t.Fatal(err)
	}
	totals := final.Plan.Totals
	if usage.Reserved != totals || usage.Reservations != 1 {
		t.Errorf("pool reserved %+v in %d reservations; the plan's totals are %+v", usage.Reserved, usage.Reservations, totals)
	}

	// The archive: compose.yaml loads back with the plan's services.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/compositions/"+id+"/archive", nil)
	resp, raw := c.Do(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("archive = %d %s", resp.StatusCode, raw)
	}
	dir := untar(t, raw)
	project, err := instantiate.Load(context.Background(), filepath.Join(dir, id))
	if err != nil {
		t.Fatalf("the archive's compose.yaml does not load: %v", err)
	}
	if len(project.Services) != len(final.Plan.Services) {
		t.Errorf("compose.yaml has %d services, the plan %d", len(project.Services), len(final.Plan.Services))
	}
	live := 0
	for _, s := range final.Plan.Services {
		sc, ok := project.Services[s.Name]
		if !ok {
			t.Errorf("service %s is not in compose.yaml", s.Name)
			continue
		}
		if int64(sc.Deploy.Resources.Limits.MemoryBytes) != s.Allocation.MemoryBytes {
			t.Errorf("%s: memory limit %d, allocation %d", s.Name, sc.Deploy.Resources.Limits.MemoryBytes, s.Allocation.MemoryBytes)
		}
		if strings.HasPrefix(string(s.Source), "live:") {
			live++
		}
	}
	for _, f := range final.Plan.Files {
		if _, err := os.Stat(filepath.Join(dir, id, "rootfs", f.Path)); err != nil {
			t.Errorf("file %s of %s is not in the archive: %v", f.Path, f.Source, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, id, "plan.json")); err != nil {
		t.Error(err)
	}
	t.Logf("seed: %d services (%d live), %d files, timings %v", len(final.Plan.Services), live, len(final.Plan.Files), final.Timings)

	// Analysts read; they cannot compose or cancel.
	a := apitest.New(t)
	a.Token = testTokens[httpapi.Analyst]
	if resp, _ := a.Get(t, base+"/v1/compositions/"+id); resp.StatusCode != 200 {
		t.Errorf("analyst GET = %d", resp.StatusCode)
	}
	if code, _, _ := submit(t, a, base, seed, ""); code != http.StatusForbidden {
		t.Errorf("analyst POST = %d, want 403", code)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/v1/compositions/"+id+"/cancel", nil)
	if resp, _ := a.Do(t, req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("analyst cancel = %d, want 403", resp.StatusCode)
	}
	// A finished composition cannot be cancelled.
	req, _ = http.NewRequest(http.MethodPost, base+"/v1/compositions/"+id+"/cancel", nil)
	if resp, _ := c.Do(t, req); resp.StatusCode != http.StatusConflict {
		t.Errorf("cancelling a finished composition = %d, want 409", resp.StatusCode)
	}
	// It is listed.
	if resp, raw := a.Get(t, base+"/v1/compositions?status=succeeded&limit=10"); resp.StatusCode != 200 || !strings.Contains(string(raw), id) {
		t.Errorf("listing = %d %s", resp.StatusCode, raw)
	}
	// Not a date-time, so past the validating client.
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/compositions?from=yesterday", nil)
	req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Analyst])
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("listing from=yesterday = %d, want 400", resp.StatusCode)
		}
	}
	// Torn down: the capacity goes back, the directory goes, the history stays.
	req, _ = http.NewRequest(http.MethodDelete, base+"/v1/compositions/"+id, nil)
	resp, raw = c.Do(t, req)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"released_at"`) {
		t.Fatalf("DELETE = %d %s", resp.StatusCode, raw)
	}
	if usage, _ := st.PoolUsage(context.Background(), "seed-pool"); usage.Reservations != 0 {
		t.Errorf("after DELETE the pool still holds %d reservations", usage.Reservations)
	}
	if _, dir, _ := strings.Cut(final.Output, ":"); dir == "" || fileExists(dir) {
		t.Errorf("after DELETE the directory %q is still there", dir)
	}
	if c2, err := st.GetComposition(context.Background(), id); err != nil || c2.Plan == nil || c2.Status != domain.StatusSucceeded {
		t.Errorf("after DELETE the history lost the composition: %v", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// untar unpacks a gzipped tarball into a temporary directory.
func untar(t testing.TB, raw []byte) string {
	t.Helper()
	dir := t.TempDir()
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCancelComposition: a composition whose live host does not answer is
// cancelled while it runs; it ends cancelled holding nothing.
func TestCancelComposition(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	host := startLiveHost(t)
	host.hang.Store(true)
	base := startServerEnv(t, dbURL, host.env, "--model-poll", "0", "--catalog", seedCatalog, "--hosts", host.hosts)
	st := openTestStore(t, dbURL)
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile("../../examples/seed/manifest.json")
	seed = bytes.Replace(seed, []byte(`"AI_AGENT"`), []byte(`"PRIORITY"`), 1)
	code, body, _ := submit(t, c, base, seed, "")
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, body)
	}
	id := body["id"].(string)
	for deadline := time.Now().Add(30 * time.Second); host.hits.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the composition never reached the live host")
		}
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions/"+id+"/cancel", nil)
	if resp, raw := c.Do(t, req); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel = %d %s", resp.StatusCode, raw)
	}
	final := waitFinished(t, st, id, 30*time.Second)
	if final.Status != domain.StatusCancelled {
		t.Errorf("status %s (%s), want cancelled", final.Status, final.Error)
	}
	var held int
	st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM reservations WHERE composition_id = $1 AND released_at IS NULL`, id).Scan(&held)
	if held != 0 {
		t.Errorf("a cancelled composition holds %d reservations", held)
	}
}

// TestCompositionsNeverOverCommitThePool: 50 compositions at once against
// a pool with room for a few: exactly as many as fit succeed, the others
// fail saying the pool is short, and the pool is never over-committed.
func TestCompositionsNeverOverCommitThePool(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	base := startServer(t, dbURL, "--model-poll", "0", "--catalog", seedCatalog, "--pool", "small", "--workers", "8")
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, err := os.ReadFile(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	// One composition's totals, from a dry run; the pool fits 3 of them.
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions?dry_run=true", bytes.NewReader(seed))
	req.Header.Set("Content-Type", "application/json")
	_, raw := c.Do(t, req)
	var plan domain.Plan
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	const fit = 3
	capacity := domain.Resources{CPUMillicores: plan.Totals.CPUMillicores*fit + plan.Totals.CPUMillicores/2,
		MemoryBytes: plan.Totals.MemoryBytes * 10, DiskBytes: plan.Totals.DiskBytes * 10}
	if err := st.UpsertPool(context.Background(), "small", capacity); err != nil {
		t.Fatal(err)
	}
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, _ := submit(t, c, base, seed, "")
			if code != http.StatusAccepted {
				t.Errorf("POST = %d %v", code, body)
				return
			}
			ids[i] = body["id"].(string)
		}()
	}
	wg.Wait()
	succeeded, short := 0, 0
	for _, id := range ids {
		if id == "" {
			continue
		}
		final := waitFinished(t, st, id, 120*time.Second)
		switch {
		case final.Status == domain.StatusSucceeded:
			succeeded++
		case final.Status == domain.StatusFailed && strings.Contains(final.Error, "too little free capacity"):
			short++
		default:
			t.Errorf("composition %s: %s %q", id, final.Status, final.Error)
		}
	}
	usage, err := st.PoolUsage(context.Background(), "small")
	if err != nil {
		t.Fatal(err)
	}
	if succeeded != fit || short != n-fit || usage.Reservations != fit {
		t.Errorf("%d succeeded, %d refused for capacity, %d reservations held; want %d, %d, %d", succeeded, short, usage.Reservations, fit, n-fit, fit)
	}
	if usage.Reserved.CPUMillicores > capacity.CPUMillicores || usage.Reserved.MemoryBytes > capacity.MemoryBytes || usage.Reserved.DiskBytes > capacity.DiskBytes {
		t.Errorf("pool over-committed: %+v reserved of %+v", usage.Reserved, capacity)
	}
}

// TestTwoServersShareOneQueue: compositions submitted to one server are
// carried out by both.
func TestTwoServersShareOneQueue(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	a := startServer(t, dbURL, "--model-poll", "0", "--catalog", seedCatalog, "--workers", "1", "--worker-id", "server-a", "--pool", "big")
	startServer(t, dbURL, "--model-poll", "0", "--catalog", seedCatalog, "--workers", "1", "--worker-id", "server-b", "--pool", "big")
	unlimitedPool(t, st, "big")
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile(seedTemplates)
	const n = 16
	var ids []string
	for range n {
		code, body, _ := submit(t, c, a, seed, "")
		if code != http.StatusAccepted {
			t.Fatalf("POST = %d %v", code, body)
		}
		ids = append(ids, body["id"].(string))
	}
	by := map[string]int{}
	for _, id := range ids {
		if final := waitFinished(t, st, id, 120*time.Second); final.Status != domain.StatusSucceeded {
			t.Fatalf("%s: %s %q", id, final.Status, final.Error)
		}
		var who []string
		if err := st.Pool().QueryRow(context.Background(), `SELECT attempted_by FROM river_job WHERE args->>'composition_id' = $1`, id).Scan(&who); err != nil {
			t.Fatal(err)
		}
		if len(who) != 1 {
			t.Errorf("%s was attempted by %v, want one", id, who)
			continue
		}
		by[who[0]]++
	}
	if by["server-a"] == 0 || by["server-b"] == 0 {
		t.Errorf("the work was shared %v; want both servers to take some", by)
	}
}
