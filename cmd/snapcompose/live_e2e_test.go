package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/plantest"
	"github.com/snapcompose/snapcompose/internal/snapagent"
)

// TestPlanThroughARealAgent plans live sources captured by the real
// snapagent, served over HTTP from a temporary tree the agent sees as the
// host's file system (rootfs): a file that collides with template_a's, and
// a process running from the captured path with variables template_a sets
// too.
func TestPlanThroughARealAgent(t *testing.T) {
	t.Parallel()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(base, "hostfs")
	files := map[string]string{
		"var/app/data/orders.csv":  "order_id,total\n1,9.99\n2,24.00\n",
		"var/app/logs/app.log":     "2025-02-01T06:00:00Z INFO api started\n",
		"var/app/config/app.yaml":  "listen: 127.0.0.1:9090\n",
		"etc/app/app.conf":         "# the live host's own app.conf\nlisten = 0.0.0.0:9090\n",
		"etc/app/conf.d/extra.ini": "[extra]\n",
	}
	writeTree(t, rootfs, files)

	// A process running from under the captured path, when the system has
	// a sleep to copy there.
	withProcess := false
	if sleep, err := exec.LookPath("sleep"); err == nil {
		exe := filepath.Join(rootfs, "var/app/bin/worker")
		if copyFile(t, sleep, exe) {
			cmd := exec.Command(exe, "300")
			cmd.Dir = filepath.Join(rootfs, "var/app")
			cmd.Env = []string{"LOG_LEVEL=warn", "ORDERS_API_TOKEN=tok_e2e_8c1f"}
			if err := cmd.Start(); err == nil {
				withProcess = true
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			}
		}
	}

	const token = "e2e-token-0123456789abcdef"
	agent, err := snapagent.New(snapagent.Config{Roots: []string{rootfs}, Token: token, Hostname: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agent.Handler())
	t.Cleanup(srv.Close)

	hostsPath := writeTemp(t, "hosts.yaml", fmt.Sprintf(
		"hosts:\n  production_server_1:\n    url: %s\n    token_env: SNAPCOMPOSE_E2E_AGENT_TOKEN\n    rootfs: %s\n", srv.URL, rootfs))
	manifest := writeTemp(t, "manifest.json", `{
  "name": "e2e",
  "sources": [
    {"type": "template", "id": "template_a", "priority": 1},
    {"type": "live", "host": "production_server_1", "path": "/var/app", "priority": 2, "tags": ["data"]},
    {"type": "live", "host": "production_server_1", "path": "/etc/app", "priority": 0}
  ],
  "conflict_resolution": "PRIORITY",
  "resource_limits": {"cpu": "8", "memory": "32GB", "disk": "500GB"}
}`)

	var out, errOut strings.Builder
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(name string) string {
		if name == "SNAPCOMPOSE_E2E_AGENT_TOKEN" {
			return token
		}
		return ""
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code := m.Run(ctx, []string{"plan", "-f", manifest, "--catalog", seedCatalog, "--hosts", hostsPath, "--output", "json"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	plantest.Validate(t, []byte(out.String()))

	var plan struct {
		Services  []struct{ Name, Source, Image string }  `json:"services"`
		Files     []struct{ Path, Source, Digest string } `json:"files"`
		Conflicts []struct {
			Key        string
			Claimants  []struct{ Source string }
			Resolution struct{ Winner string }
		} `json:"conflicts"`
	}
	if err := json.Unmarshal([]byte(out.String()), &plan); err != nil {
		t.Fatal(err)
	}
	const app, etc = "live:production_server_1:/var/app", "live:production_server_1:/etc/app"
	got := map[string]string{} // path -> source@digest
	for _, f := range plan.Files {
		got[f.Path] = f.Source + "@" + f.Digest
	}
	for name, body := range files {
		p := "/" + name
		want := app + "@" + sha(body)
		switch {
		case p == "/etc/app/app.conf":
			want = "template:template_a@" // priority 1 beats the live /etc/app's 0
		case strings.HasPrefix(p, "/etc/"):
			want = etc + "@" + sha(body)
		}
		if !strings.HasPrefix(got[p], want) {
			t.Errorf("file %s = %s, want %s...", p, got[p], want)
		}
	}
	var fileConflict bool
	for _, c := range plan.Conflicts {
		if c.Key == "file:/etc/app/app.conf" && c.Resolution.Winner == "template:template_a" && len(c.Claimants) == 2 && c.Claimants[1].Source == etc {
			fileConflict = true
		}
	}
	if !fileConflict {
		t.Errorf("no file:/etc/app/app.conf conflict between template_a and %s: %+v", etc, plan.Conflicts)
	}

	// The same, instantiated: the live files fetched by digest from the
	// agent, compose.yaml loading back with compose-go.
	outDir := filepath.Join(t.TempDir(), "env")
	errOut.Reset()
	if code := m.Run(ctx, []string{"compose", "-f", manifest, "--catalog", seedCatalog, "--hosts", hostsPath, "--out", outDir}); code != 0 {
		t.Fatalf("compose: exit %d: %s", code, errOut.String())
	}
	project, err := instantiate.Load(ctx, outDir)
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	if len(project.Services) != len(plan.Services) {
		t.Errorf("compose.yaml has %d services, the plan %d", len(project.Services), len(plan.Services))
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(outDir, "rootfs", name))
		if err != nil || string(b) != body && name != "etc/app/app.conf" {
			t.Errorf("rootfs/%s: %q, %v", name, b, err)
		}
	}
	env, _ := os.ReadFile(filepath.Join(outDir, ".env"))
	if strings.Contains(string(env), "tok_e2e_8c1f") {
		t.Errorf("a live secret's value reached .env")
	}
	if !withProcess {
		t.Log("no sleep binary to run from the tree: the process part is skipped")
		return
	}
	var worker bool
	for _, s := range plan.Services {
		if s.Name == "worker" && s.Source == app && s.Image == "exe:/var/app/bin/worker" {
			worker = true
		}
	}
	if !worker {
		t.Errorf("the process running from /var/app is not a service of the plan: %+v", plan.Services)
	}
	sc := project.Services["worker"]
	mounted := false
	for _, v := range sc.Volumes {
		mounted = mounted || v.Target == "/var/app" && strings.HasSuffix(v.Source, "/rootfs/var/app")
	}
	if sc.Image != instantiate.DefaultLiveImage || strings.Join(sc.Command, " ") != "/var/app/bin/worker 300" || !mounted || sc.WorkingDir != "/var/app" {
		t.Errorf("the live worker in compose.yaml: image %q, command %q, working_dir %q, volumes %+v", sc.Image, sc.Command, sc.WorkingDir, sc.Volumes)
	}
	if v, ok := sc.Environment["LOG_LEVEL"]; !ok || v == nil || *v != "warn" {
		t.Errorf("the worker's LOG_LEVEL from .env = %v", v)
	}
	if !strings.Contains(string(env), "ORDERS_API_TOKEN=\n") || !strings.Contains(string(env), "# ORDERS_API_TOKEN: a secret captured") {
		t.Errorf(".env should leave the live secret ORDERS_API_TOKEN empty with a comment:\n%s", env)
	}
	var envConflict bool
	for _, c := range plan.Conflicts {
		if c.Key == "env:LOG_LEVEL" && c.Resolution.Winner == app {
			envConflict = true
		}
	}
	if !envConflict {
		t.Errorf("the live LOG_LEVEL does not win env:LOG_LEVEL over template_a's")
	}
	if strings.Contains(out.String(), "tok_e2e_8c1f") || strings.Contains(out.String(), token) {
		t.Errorf("a secret reached the plan")
	}
}

// copyFile copies an executable; it reports false when it cannot.
func copyFile(t *testing.T, from, to string) bool {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		return false
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	return out.Close() == nil
}
