package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"go.yaml.in/yaml/v4"

	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/snapagent"
)

// minRole is the least role each /v1 endpoint admits. TestEveryEndpointChecksTokens
// fails when the OpenAPI document has an endpoint this table lacks, so a
// new endpoint cannot skip the check.
var minRole = map[string]httpapi.Role{
	"GET /v1/agent":                      httpapi.Analyst,
	"POST /v1/conflicts/resolve":         httpapi.Composer,
	"POST /v1/allocations/optimize":      httpapi.Composer,
	"GET /v1/compositions":               httpapi.Analyst,
	"POST /v1/compositions":              httpapi.Composer,
	"GET /v1/compositions/{id}":          httpapi.Analyst,
	"DELETE /v1/compositions/{id}":       httpapi.Composer,
	"POST /v1/compositions/{id}/cancel":  httpapi.Composer,
	"GET /v1/compositions/{id}/archive":  httpapi.Composer,
	"POST /v1/compositions/{id}/outcome": httpapi.Composer,
	"GET /v1/compositions/{id}/outcomes": httpapi.Analyst,
	"POST /v1/compositions/{id}/usage":   httpapi.Composer,
	"GET /v1/history/compositions":       httpapi.Analyst,
	"GET /v1/history/conflicts":          httpapi.Analyst,
	"GET /v1/history/summary":            httpapi.Analyst,
	"GET /v1/models":                     httpapi.Analyst,
	"GET /v1/models/promotions":          httpapi.Analyst,
	"POST /v1/models/rollback":           httpapi.Admin,
	"GET /v1/models/{version}":           httpapi.Analyst,
	"POST /v1/models/{version}/promote":  httpapi.Admin,
	"POST /v1/training-runs":             httpapi.Admin,
	"GET /v1/training-runs/{id}":         httpapi.Analyst,
	"GET /v1/templates/{id}":             httpapi.Analyst,
	"PUT /v1/templates/{id}":             httpapi.Admin,
	"DELETE /v1/templates/{id}":          httpapi.Admin,
	"GET /v1/templates/{id}/versions":    httpapi.Analyst,
}

// TestEveryEndpointChecksTokens: every /v1 endpoint of the OpenAPI document
// refuses a request without a token or with a wrong one (401), and one
// whose role is below the endpoint's (403) — before it looks at anything
// else, so nothing is read or written.
func TestEveryEndpointChecksTokens(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL, "--model-poll", "0")
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var endpoints []string
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for method := range ops {
			if method == "parameters" {
				continue
			}
			endpoints = append(endpoints, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(endpoints)
	for _, e := range endpoints {
		if _, ok := minRole[e]; !ok {
			t.Errorf("%s is in the OpenAPI document but not in minRole: say which role it needs", e)
		}
	}
	if len(endpoints) != len(minRole) {
		t.Errorf("the OpenAPI document has %d /v1 endpoints, minRole %d", len(endpoints), len(minRole))
	}
	params := regexp.MustCompile(`\{[a-z]+\}`)
	rank := map[httpapi.Role]int{httpapi.Analyst: 0, httpapi.Composer: 1, httpapi.Admin: 2}
	for _, e := range endpoints {
		method, path, _ := strings.Cut(e, " ")
		url := base + params.ReplaceAllString(path, "00000000-0000-0000-0000-000000000000")
		do := func(token string) int {
			req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := do(""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token = %d, want 401", e, code)
		}
		if code := do("wrong-token-0123456789"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token = %d, want 401", e, code)
		}
		for role, tok := range testTokens {
			code := do(tok)
			if below := rank[role] < rank[minRole[e]]; below != (code == http.StatusForbidden) {
				t.Errorf("%s as %s = %d; below the %s it needs: %v", e, role, code, minRole[e], below)
			}
		}
	}
}

// TestCapturedSecretsStayHidden: a live process runs with secrets in its
// environment (command-line passwords are snapagent's tests'); it is captured by a real snapagent,
// composed, recorded and instantiated over the API; then every table of
// the database, the server's log, the plan and every file of the output
// are searched for the secrets in clear text.
func TestCapturedSecretsStayHidden(t *testing.T) {
	t.Parallel()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary to run as the live process")
	}
	secrets := []string{"tok-live-secret-7e1c0d9a", "pw-live-secret-44b1e2"}
	base0, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(base0, "hostfs")
	writeTree(t, rootfs, map[string]string{"var/app/config/app.yaml": "listen: 127.0.0.1:9090\n"})
	exe := filepath.Join(rootfs, "var/app/bin/worker")
	if !copyFile(t, sleep, exe) {
		t.Skip("cannot copy sleep")
	}
	cmd := exec.Command(exe, "300")
	cmd.Dir = filepath.Join(rootfs, "var/app")
	cmd.Env = []string{"LOG_LEVEL=warn", "ORDERS_API_TOKEN=" + secrets[0], "DB_PASSWORD=" + secrets[1]}
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start the live process:", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	const agentToken = "secret-test-agent-token-0123456789"
	agent, err := snapagent.New(snapagent.Config{Roots: []string{rootfs}, Token: agentToken, Hostname: "production_server_1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agent.Handler())
	t.Cleanup(srv.Close)
	hostsPath := writeTemp(t, "hosts.yaml", fmt.Sprintf(
		"hosts:\n  production_server_1:\n    url: %s\n    token_env: SNAPCOMPOSE_SECRET_AGENT_TOKEN\n    rootfs: %s\n", srv.URL, rootfs))

	pool, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	dataDir := t.TempDir()
	base := startServerEnv(t, dbURL, map[string]string{"SNAPCOMPOSE_SECRET_AGENT_TOKEN": agentToken},
		"--model-poll", "0", "--catalog", seedCatalog, "--hosts", hostsPath, "--pool", "sec", "--data-dir", dataDir)
	unlimitedPool(t, st, "sec")
	c := apitest.New(t)
	c.Token = testTokens[httpapi.Composer]
	manifest := []byte(`{"name": "secrets", "sources": [
		{"type": "template", "id": "template_a", "priority": 1},
		{"type": "live", "host": "production_server_1", "path": "/var/app", "priority": 2}],
		"conflict_resolution": "PRIORITY", "resource_limits": {"cpu": "16", "memory": "64GB", "disk": "1TB"}}`)
	id, final := composeOK(t, c, base, st, manifest)
	live := false
	for _, s := range final.Plan.Services {
		live = live || strings.HasPrefix(string(s.Source), "live:")
	}
	if !live {
		t.Fatalf("the live process is not a service of the plan: the test would prove nothing (services %+v, dropped %+v)", final.Plan.Services, final.Plan.Dropped)
	}

	var where []string
	look := func(what, text string) {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				where = append(where, fmt.Sprintf("%s holds %s", what, s))
			}
		}
	}
	// Every table, every column, as text.
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		var dump string
		if err := pool.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+pgx.Identifier{table}.Sanitize()+` t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		look("table "+table, dump)
	}
	look("the server's log", logOf(base))
	_, got, _ := getJSON(t, base+"/v1/compositions/"+id)
	raw, _ := json.Marshal(got)
	look("the composition as the API serves it", string(raw))
	filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, string(filepath.Separator)+"postgres"+string(filepath.Separator)) {
			b, _ := os.ReadFile(p)
			look(p, string(b))
		}
		return nil
	})
	if len(tables) < 10 {
		t.Errorf("searched only %d tables", len(tables))
	}
	if len(where) > 0 {
		t.Errorf("captured secrets in clear text:\n%s", strings.Join(where, "\n"))
	}
}
