package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
)

// startServer runs `snapcompose serve --addr 127.0.0.1:0` in-process against
// a database of the test's own and returns its base URL.
func startServer(t testing.TB, databaseURL string, args ...string) string {
	t.Helper()
	return startServerEnv(t, databaseURL, nil, args...)
}

// startServerEnv is startServer with more environment variables.
func startServerEnv(t testing.TB, databaseURL string, extra map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan int, 1)
	logs := &syncBuffer{}
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	var doc strings.Builder
	doc.WriteString("tokens:\n")
	for role, tok := range testTokens {
		fmt.Fprintf(&doc, "  - {name: test-%s, role: %s, sha256: %s}\n", role, role, httpapi.HashToken(tok))
	}
	if err := os.WriteFile(tokens, []byte(doc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": databaseURL, "SNAPCOMPOSE_TOKENS_FILE": tokens}
	for k, v := range extra {
		env[k] = v
	}
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logs,
		Getenv:   func(k string) string { return env[k] },
		OnListen: func(addr string) { addrc <- addr },
	}
	if !slices.Contains(args, "--data-dir") {
		args = append(args, "--data-dir", t.TempDir())
	}
	go func() { done <- m.Run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d", code)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not shut down within 20s")
		}
	})
	select {
	case addr := <-addrc:
		base := "http://" + addr
		serverLogMu.Lock()
		serverLog[base] = logs
		serverLogMu.Unlock()
		return base
	case code := <-done:
		t.Fatalf("serve exited %d before listening; its log:\n%s", code, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start within 60s")
	}
	return ""
}

// serverLog holds the log of each server startServer started, by base URL.
var (
	serverLogMu sync.Mutex
	serverLog   = map[string]*syncBuffer{}
)

// logOf returns the log so far of the server at base.
func logOf(base string) string {
	serverLogMu.Lock()
	defer serverLogMu.Unlock()
	return serverLog[base].String()
}

// testTokens are the bearer tokens startServer's servers accept, by role.
var testTokens = map[httpapi.Role]string{
	httpapi.Analyst: "analyst-token-0123456789", httpapi.Composer: "composer-token-0123456789", httpapi.Admin: "admin-token-0123456789",
}

// client is a validating client with the admin's token.
func client(t *testing.T) *apitest.Client {
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Admin]
	return c
}

// getJSON GETs url as the admin, validating request and response against
// the OpenAPI document, and decodes the JSON body.
func getJSON(t *testing.T, url string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, raw := client(t).Get(t, url)
	return resp.StatusCode, decode(t, url, raw), resp.Header
}

func decode(t *testing.T, url string, raw []byte) map[string]any {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", url, err)
	}
	return body
}

func TestServeHealthAndReadiness(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL)

	if code, body, _ := getJSON(t, base+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Errorf("/healthz = %d %v", code, body)
	}
	if code, body, _ := getJSON(t, base+"/readyz"); code != 200 || body["status"] != "ready" {
		t.Errorf("/readyz = %d %v, want 200 ready", code, body)
	}
	// Not in the document, so not through the validating client.
	resp, err := http.Get(base + "/no/such/route")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if body := decode(t, "/no/such/route", raw); resp.StatusCode != 404 || body["code"] != "not_found" {
		t.Errorf("unknown route = %d %v, want a 404 JSON error", resp.StatusCode, body)
	}

	// A schema behind this build's is reported, with a hint when to retry.
	g, err := store.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Down(); err != nil {
		t.Fatal(err)
	}
	g.Close()
	code, body, header := getJSON(t, base+"/readyz")
	if code != 503 || header.Get("Retry-After") == "" || !strings.Contains(body["error"].(string), "schema") {
		t.Errorf("/readyz after a down migration = %d %v (Retry-After %q), want 503 naming the schema", code, body, header.Get("Retry-After"))
	}
}

func TestServeRefusesAnUnreachableDatabase(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	m := &Main{Stdout: io.Discard, Stderr: &stderr,
		Getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return "postgres://snapcompose:hunter2@127.0.0.1:1/snapcompose?sslmode=disable&connect_timeout=2"
			}
			return ""
		}}
	code := m.Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"})
	if code != 1 || !strings.Contains(stderr.String(), "cannot reach the database") {
		t.Errorf("exit %d, stderr %q: want 1 and a clear message", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("the database password reached stderr: %q", stderr.String())
	}
}

// TestServeSwapsInPromotedModels: the server serves the model file until a
// model is promoted in the registry, then swaps it in; a promoted model it
// cannot use (corrupt, or of another feature schema) is refused and the
// current one keeps serving.
func TestServeSwapsInPromotedModels(t *testing.T) {
	t.Parallel()
	agenttest.Library(t)
	pool, dbURL := pgtest.NewDatabase(t)
	st := store.New(pool)
	base := startServer(t, dbURL, "--data-dir", t.TempDir(), "--model", agenttest.ModelPath(), "--model-poll", "50ms")
	version := func() (int, map[string]any) {
		code, body, _ := getJSON(t, base+"/v1/agent")
		return code, body
	}
	if code, body := version(); code != 200 || body["model_version"] != "file:"+agenttest.ModelPath() || body["feature_schema"] != features.SchemaHash() {
		t.Fatalf("/v1/agent = %d %v, want the model file serving", code, body)
	}
	onnx, err := os.ReadFile(agenttest.ModelPath())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	promote := func(v string, body []byte, schema string) {
		t.Helper()
		if _, err := st.InsertModelVersion(ctx, store.ModelVersion{Version: v, Card: []byte(`{}`), ONNX: body, FeatureSchema: schema}); err != nil {
			t.Fatal(err)
		}
		if err := st.PromoteModel(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := version()
			if code == 200 && body["model_version"] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/v1/agent = %d %v, want %s serving", code, body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	promote("v-good", onnx, features.SchemaHash())
	waitFor("v-good")
	promote("v-corrupt", onnx[:len(onnx)/2], features.SchemaHash())
	promote("v-other-schema", onnx, "sha256:"+strings.Repeat("b", 64))
	time.Sleep(300 * time.Millisecond) // several polls
	if code, body := version(); code != 200 || body["model_version"] != "v-good" {
		t.Errorf("after promoting unusable models: /v1/agent = %d %v, want v-good still serving", code, body)
	}
	promote("v-good-2", onnx, features.SchemaHash())
	waitFor("v-good-2")
}

// TestServeDocumentsAndMeasuresItself: /openapi.yaml is the document the
// tests validate against, /metrics counts requests by route, and an
// oversized body is refused before it is read.
func TestServeDocumentsAndMeasuresItself(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL)
	c := client(t)
	resp, body := c.Get(t, base+"/openapi.yaml")
	if resp.StatusCode != 200 || string(body) != string(httpapi.OpenAPI()) {
		t.Errorf("/openapi.yaml = %d, %d bytes; want the embedded document", resp.StatusCode, len(body))
	}
	for range 3 {
		c.Get(t, base+"/healthz")
	}
	resp, body = c.Get(t, base+"/metrics")
	want := `snapcompose_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 3`
	if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
		t.Errorf("/metrics = %d, does not count the three /healthz calls (%s):\n%s", resp.StatusCode, want, body)
	}
	big, err := http.Post(base+"/healthz", "application/json", strings.NewReader(strings.Repeat("x", 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	big.Body.Close()
	if big.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB body: %d, want 413", big.StatusCode)
	}
}

// TestServeAgentAPI: the concept's resolve_conflict and
// optimize_allocation over HTTP, with the served model; bad requests name
// their fields.
func TestServeAgentAPI(t *testing.T) {
	t.Parallel()
	agenttest.Library(t)
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL, "--data-dir", t.TempDir(), "--model", agenttest.ModelPath(), "--model-poll", "0")
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, raw := c.Do(t, req)
		return resp.StatusCode, decode(t, path, raw)
	}
	resolve := `{
	  "request1": {"source": {"type": "template", "id": "orders", "priority": 2},
	    "services": [{"name": "web", "image": "nginx:1.27", "ports": [{"host": 8080, "container": 80}], "depends_on": ["api"],
	                  "requested": {"cpu": "1", "memory": "1GiB", "disk": "1GB"}},
	                 {"name": "api", "image": "orders-api:1.4", "ports": [{"host": 9090, "container": 9090}],
	                  "requested": {"cpu": "2", "memory": "4GiB", "disk": "1GB"}, "minimum": {"cpu": "1", "memory": "2GiB", "disk": "1GB"}}],
	    "env": [{"name": "LOG_LEVEL", "value": "info"}]},
	  "request2": {"source": {"type": "live", "host": "prod-1", "path": "/srv/app", "priority": 1},
	    "services": [{"name": "web", "image": "exe:/srv/app/bin/web", "ports": [{"host": 8080, "container": 8080}],
	                  "requested": {"cpu": "1500m", "memory": "1GiB", "disk": "1GB"}}],
	    "env": [{"name": "LOG_LEVEL", "value": "debug"}]},
	  "limits": {"cpu": "6 cores", "memory": "8GiB", "disk": "100GB"}
	}`
	code, plan := post("/v1/conflicts/resolve", resolve)
	if code != 200 || plan["strategy"] != "AI_AGENT" || plan["feasible"] != true {
		t.Fatalf("resolve = %d %v", code, plan)
	}
	explained := 0
	for _, cf := range plan["conflicts"].([]any) {
		if res := cf.(map[string]any)["resolution"].(map[string]any); res["score"] != nil {
			explained++
		}
	}
	if explained < 2 {
		t.Errorf("%d conflicts scored, want the name and LOG_LEVEL at least: %v", explained, plan["conflicts"])
	}
	body, _ := json.Marshal(map[string]any{"allocation": plan, "performance_metrics": map[string]any{"api": map[string]string{"cpu_p95": "1200m", "memory_peak": "3GiB"}}})
	code, opt := post("/v1/allocations/optimize", string(body))
	if code != 200 {
		t.Fatalf("optimize = %d %v", code, opt)
	}
	for _, sv := range opt["services"].([]any) {
		s := sv.(map[string]any)
		if s["name"] == "api" && s["requested"].(map[string]any)["cpu_millicores"] != float64(1440) {
			t.Errorf("api after optimizing requests %v, want 1440m (1200m + 20%%)", s["requested"])
		}
	}
	for _, tt := range []struct{ name, body, want string }{
		{"minimum above request", strings.Replace(resolve, `"minimum": {"cpu": "1"`, `"minimum": {"cpu": "3"`, 1), "request1.services[1] (api): minimum cpu"},
		{"bad quantity", strings.Replace(resolve, `"cpu": "6 cores"`, `"cpu": "six"`, 1), "limits.cpu"},
		{"unknown strategy", strings.Replace(resolve, `"limits"`, `"conflict_resolution": "ROCK_PAPER", "limits"`, 1), ""},
	} {
		if tt.want == "" {
			// Not valid against the document: sent past the validating client.
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/conflicts/resolve", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+c.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(raw), "conflict_resolution") {
				t.Errorf("%s: %d %s, want 400 naming conflict_resolution", tt.name, resp.StatusCode, raw)
			}
			continue
		}
		code, e := post("/v1/conflicts/resolve", tt.body)
		if raw, _ := json.Marshal(e); code != 400 || !strings.Contains(string(raw), tt.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", tt.name, code, raw, tt.want)
		}
	}
}

// TestServeAuth: /v1 needs a known bearer token, a role that allows the
// call, and stays under the token's rate; the open routes need none.
func TestServeAuth(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL, "--model-poll", "0")
	anon := apitest.New(t)
	if resp, _ := anon.Get(t, base+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("/healthz without a token = %d, want 200", resp.StatusCode)
	}
	resp, body := anon.Get(t, base+"/v1/agent")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(string(body), "Bearer") {
		t.Errorf("/v1/agent without a token = %d %s, want 401 asking for a bearer token", resp.StatusCode, body)
	}
	wrong := apitest.New(t)
	wrong.Token = "not-a-token"
	if resp, _ := wrong.Get(t, base+"/v1/agent"); resp.StatusCode != 401 {
		t.Errorf("an unknown token = %d, want 401", resp.StatusCode)
	}
	analyst := apitest.New(t)
	analyst.Token = testTokens[httpapi.Analyst]
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/allocations/optimize", strings.NewReader(`{"allocation": {"name": "x", "strategy": "PRIORITY", "feasible": true, "services": [], "conflicts": [], "limits": {}, "totals": {}}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, body = analyst.Do(t, req)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "role analyst") {
		t.Errorf("an analyst optimizing = %d %s, want 403 naming the role", resp.StatusCode, body)
	}
	limited := 0
	for range httpapi.DefaultBurst + 20 {
		resp, _ := analyst.Get(t, base+"/v1/agent")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Errorf("%d requests at once were all admitted: want the rate limit to answer 429", httpapi.DefaultBurst+20)
	}
}

// TestServeDevelopmentToken: without a tokens file the server makes a
// development admin token under its data directory (mode 0600), accepts
// it, and logs where it is, never what it is.
func TestServeDevelopmentToken(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc, done := make(chan string, 1), make(chan int, 1)
	logs := &syncBuffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logs,
		Getenv:   func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] },
		OnListen: func(addr string) { addrc <- addr }}
	go func() {
		done <- m.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--model-poll", "0"})
	}()
	var base string
	select {
	case addr := <-addrc:
		base = "http://" + addr
	case code := <-done:
		t.Fatalf("serve exited %d", code)
	}
	path := filepath.Join(dir, "dev-token")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("dev token file: %v, mode %v; want 0600", err, info)
	}
	raw, _ := os.ReadFile(path)
	c := apitest.New(t)
	c.Token = strings.TrimSpace(string(raw))
	if resp, body := c.Get(t, base+"/v1/agent"); resp.StatusCode == 401 || resp.StatusCode == 403 {
		t.Errorf("the development token = %d %s, want it admitted", resp.StatusCode, body)
	}
	cancel()
	<-done
	if s := logs.String(); !strings.Contains(s, path) || strings.Contains(s, c.Token) {
		t.Errorf("the logs should name %s and never the token:\n%s", path, s)
	}
}

// TestServeDryRun: POST /v1/compositions?dry_run=true plans the seed
// (templates) with the served AI_AGENT; a bad manifest names its fields.
func TestServeDryRun(t *testing.T) {
	t.Parallel()
	agenttest.Library(t)
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL, "--model", agenttest.ModelPath(), "--model-poll", "0", "--catalog", seedCatalog)
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	seed, err := os.ReadFile(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	post := func(query string, body []byte) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions"+query, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, raw := c.Do(t, req)
		return resp.StatusCode, decode(t, "/v1/compositions", raw)
	}
	aiSeed := bytes.Replace(seed, []byte(`"PRIORITY"`), []byte(`"AI_AGENT"`), 1)
	code, plan := post("?dry_run=true", aiSeed)
	if code != 200 || plan["strategy"] != "AI_AGENT" || len(plan["conflicts"].([]any)) != 7 {
		t.Fatalf("dry run = %d %v", code, plan)
	}
	code, e := post("?dry_run=true", []byte(`{"name": "x", "sources": [{"type": "template", "id": "template_a", "priority": "high"}], "conflict_resolution": "PRIORITY", "resource_limits": {"cpu": "1", "memory": "1GB", "disk": "1GB"}}`))
	if raw, _ := json.Marshal(e); code != 400 || !strings.Contains(string(raw), "/sources/0/priority") {
		t.Errorf("a bad manifest = %d %s, want 400 naming /sources/0/priority", code, raw)
	}
	// The plan is measured.
	_, metrics := c.Get(t, base+"/metrics")
	for _, want := range []string{
		`snapcompose_plan_duration_seconds_count{outcome="ok",strategy="AI_AGENT"} 1`,
		`snapcompose_conflicts_total{action="keep",kind="env"} 2`,
		`snapcompose_agent_chosen_score_count 7`,
		`snapcompose_allocator_duration_seconds_count{method="`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
