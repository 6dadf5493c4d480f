package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/plantest"
)

const (
	agentToken     = "cli-test-token-5d1c"
	demoOrdersToke = "tok_live_demo_e3b9"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// seedCapture is what snapagent reports for the seed's live source: the
// demo's own api on port 9090 under /var/app, with data and log files.
func seedCapture() agentapi.Capture {
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	level := "warn"
	return agentapi.Capture{
		Host: "demo", Path: "/var/app", Root: "/", CapturedAt: at,
		Files: []agentapi.File{
			{Path: "/var/app/bin/api", Size: 7_340_032, Mode: 0o755, Digest: sha("bin"), ModTime: at},
			{Path: "/var/app/config/app.yaml", Size: 612, Mode: 0o644, Digest: sha("app.yaml"), ModTime: at},
			{Path: "/var/app/data/exports/orders-2024-06.csv", Size: 18_432, Mode: 0o644, Digest: sha("orders"), ModTime: at},
			{Path: "/var/app/logs/app.log", Size: 9_216, Mode: 0o640, Digest: sha("log"), ModTime: at},
		},
		Ports: []agentapi.Port{{Protocol: "tcp", Address: "127.0.0.1", Port: 9090, PID: 4242, Service: "api"}},
		Processes: []agentapi.Process{{
			PID: 4242, Service: "api", Name: "api", Exe: "/var/app/bin/api", Cwd: "/var/app", Cmdline: []string{"./bin/api"},
			CPUMillicores: 3, MemoryBytes: 9 << 20,
			Env: []agentapi.EnvVar{
				{Name: "LOG_LEVEL", Value: &level},
				{Name: "ORDERS_API_TOKEN", Digest: sha(demoOrdersToke)},
			},
		}},
		Recommendations: []agentapi.Recommendation{{Service: "api", MinCPUMillicores: 50, DesiredCPUMillicores: 100, MinMemoryBytes: 32 << 20, DesiredMemoryBytes: 64 << 20, Samples: 30, Basis: "p90 of 30 samples + 15%"}},
		Stats:           agentapi.CaptureStats{Files: 4, Bytes: 7_368_292},
	}
}

// fakeAgent serves a capture like snapagent does, or answers with status
// when it is not 200. It counts requests.
func fakeAgent(t *testing.T, status int, c agentapi.Capture) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+agentToken {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(agentapi.Error{Code: "unauthorized", Message: "missing or wrong token"})
			return
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(agentapi.Error{Code: "invalid", Message: "path /var/app is not under any root this agent serves"})
			return
		}
		json.NewEncoder(w).Encode(c)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// hostsFile writes a hosts file for production_server_1 with the given
// entry body (indented under it), and beside it agent.token, holding the
// agent's token, and wrong.token, holding another.
func hostsFile(t *testing.T, entry string) string {
	t.Helper()
	dir := t.TempDir()
	for name, token := range map[string]string{"agent.token": agentToken, "wrong.token": "not-the-token"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(path, []byte("hosts:\n  production_server_1:\n"+entry), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func agentEntry(url string) string {
	return fmt.Sprintf("    url: %s\n    token_file: agent.token\n    timeout: 5s\n", url)
}

func TestGoldenLivePlan(t *testing.T) {
	t.Parallel()
	srv, requests := fakeAgent(t, http.StatusOK, seedCapture())
	hosts := hostsFile(t, agentEntry(srv.URL))
	args := []string{"plan", "-f", seedManifest, "--catalog", seedCatalog, "--hosts", hosts, "--strategy", "PRIORITY"}

	code, stdout, stderr := run(t, "", append(args, "--output", "json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	plantest.Validate(t, []byte(stdout))
	if n := requests.Load(); n != 1 {
		t.Errorf("agent requests = %d, want 1", n)
	}
	var plan struct {
		Services []struct{ Name, Source, Image string } `json:"services"`
		Files    []struct{ Path, Source string }        `json:"files"`
		Env      []struct {
			Name, Source, Digest string
			Value                *string
		} `json:"env"`
		Conflicts []struct {
			Kind, Key string
			Claimants []struct{ Source string } `json:"claimants"`
		} `json:"conflicts"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	const ref = "live:production_server_1:/var/app"
	var liveAPI bool
	for _, s := range plan.Services {
		if s.Name == "api" && s.Source == ref && s.Image == "exe:/var/app/bin/api" {
			liveAPI = true
		}
	}
	if !liveAPI {
		t.Errorf("the live api is not in the plan (priority 2 beats template_a's 1): %+v", plan.Services)
	}
	var liveFiles int
	for _, f := range plan.Files {
		if f.Source == ref && strings.HasPrefix(f.Path, "/var/app/") {
			liveFiles++
		}
	}
	if liveFiles != 4 {
		t.Errorf("live files in the plan = %d, want 4", liveFiles)
	}
	for _, e := range plan.Env {
		if e.Name == "ORDERS_API_TOKEN" && (e.Value != nil || e.Digest == "") {
			t.Errorf("ORDERS_API_TOKEN carries a value: %+v", e)
		}
	}
	contested := map[string]bool{}
	for _, c := range plan.Conflicts {
		for _, cl := range c.Claimants {
			if cl.Source == ref {
				contested[c.Key] = true
			}
		}
	}
	for _, key := range []string{"service:api", "port:tcp/9090", "env:LOG_LEVEL", "env:ORDERS_API_TOKEN"} {
		if !contested[key] {
			t.Errorf("the live source takes no part in a %s conflict; it does in %v", key, contested)
		}
	}
	if strings.Contains(stdout, demoOrdersToke) || strings.Contains(stdout, agentToken) {
		t.Errorf("a secret reached the plan")
	}

	code, text, stderr := run(t, "", args...)
	if code != 0 {
		t.Fatalf("text: exit %d: %s", code, stderr)
	}
	golden(t, "seed-live-priority-text", []byte(text))
}

func TestPlanLiveSourceErrors(t *testing.T) {
	t.Parallel()
	ok, _ := fakeAgent(t, http.StatusOK, seedCapture())
	refusing, _ := fakeAgent(t, http.StatusBadRequest, agentapi.Capture{})
	closed := httptest.NewServer(http.NotFoundHandler())
	downURL := closed.URL
	closed.Close()

	withHosts := func(entry string) []string {
		return []string{"plan", "-f", seedManifest, "--catalog", seedCatalog, "--strategy", "PRIORITY", "--hosts", hostsFile(t, entry)}
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"no hosts file", []string{"plan", "-f", seedManifest, "--catalog", seedCatalog, "--strategy", "PRIORITY"}, 2,
			[]string{"--hosts", "/sources/1", "live:production_server_1:/var/app", "hosts file"}},
		{"missing hosts file", []string{"plan", "-f", seedManifest, "--catalog", seedCatalog, "--hosts", "testdata/no-hosts.yaml"}, 2,
			[]string{"testdata/no-hosts.yaml"}},
		{"bad scheme", withHosts("    url: ftp://127.0.0.1:21\n    token_file: agent.token\n"), 2,
			[]string{"hosts.yaml: hosts.production_server_1.url: scheme \"ftp\" not accepted"}},
		{"unknown field", withHosts(agentEntry(ok.URL) + "    retries: 3\n"), 2,
			[]string{"hosts.yaml: hosts.production_server_1.retries: unknown field"}},
		{"host not in the hosts file", []string{"plan", "-f", seedManifest, "--catalog", seedCatalog, "--strategy", "PRIORITY", "--hosts",
			writeTemp(t, "hosts.yaml", "hosts:\n  staging_9: {url: \"http://127.0.0.1:1\", token_env: T}\n")}, 2,
			[]string{`host "production_server_1" is not in hosts file`, "have: staging_9"}},
		{"token variable unset", withHosts(fmt.Sprintf("    url: %s\n    token_env: SNAPCOMPOSE_TEST_UNSET_TOKEN_7F\n", ok.URL)), 2,
			[]string{"hosts.production_server_1.token_env", "SNAPCOMPOSE_TEST_UNSET_TOKEN_7F is not set"}},
		{"agent down", withHosts(agentEntry(downURL)), 1,
			[]string{"live:production_server_1:/var/app", `capturing /var/app on host "production_server_1"`, "refused the connection", "(3 attempts)"}},
		{"wrong token", withHosts(fmt.Sprintf("    url: %s\n    token_file: wrong.token\n", ok.URL)), 1,
			[]string{`capturing /var/app on host "production_server_1"`, "refused the token (HTTP 401)"}},
		{"refused path", withHosts(agentEntry(refusing.URL)), 1,
			[]string{`capturing /var/app on host "production_server_1"`, "(HTTP 400): path /var/app is not under any root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(t, "", tt.args...)
			refused(t, code, tt.wantCode, stdout, stderr, tt.wantErr...)
			if strings.Contains(stderr, agentToken) {
				t.Errorf("stderr shows the token:\n%s", stderr)
			}
		})
	}
}

func writeTemp(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// refused checks a command that must fail: its exit code, no plan written,
// and an error that mentions every fragment.
func refused(t *testing.T, code, wantCode int, stdout, stderr string, fragments ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit code = %d, want %d; stderr:\n%s", code, wantCode, stderr)
	}
	if stdout != "" {
		t.Errorf("a plan was written despite the error:\n%s", stdout)
	}
	for _, frag := range fragments {
		if !strings.Contains(stderr, frag) {
			t.Errorf("stderr does not mention %q:\n%s", frag, stderr)
		}
	}
}
