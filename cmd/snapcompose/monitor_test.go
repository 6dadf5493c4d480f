package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/snapcompose/snapcompose/internal/snapagent"
)

// TestMonitoring: a snapagent on the host running a composition's
// service pushes its usage to the server, which keeps it with the
// composition; usage past the allocation becomes a degraded outcome that
// marks the service unhealthy; services the composition lacks are refused.
func TestMonitoring(t *testing.T) {
	t.Parallel()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary to run as the composition's service")
	}
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	base := startServer(t, dbURL, "--model-poll", "0", "--catalog", seedCatalog, "--pool", "mon")
	unlimitedPool(t, st, "mon")
	composer := apitest.New(t)
	composer.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile(seedTemplates)
	id, final := composeOK(t, composer, base, st, seed)
	var api domain.PlanService
	for _, s := range final.Plan.Services {
		if s.Name == "api" {
			api = s
		}
	}

	// The composition's api, running on a host a snapagent watches.
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(root, "bin", "api")
	if !copyFile(t, sleep, exe) {
		t.Skip("cannot copy sleep")
	}
	cmd := exec.Command(exe, "300")
	cmd.Dir = root
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	agent, err := snapagent.New(snapagent.Config{Roots: []string{root}, Token: "monitor-agent-token-0123456789",
		Services: []snapagent.ServiceMatch{{Name: "api", ExeGlob: "api"}}, SampleInterval: 100 * time.Millisecond, Hostname: "monitor-host"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { agent.Run(ctx); done <- struct{}{} }()
	go func() {
		agent.Report(ctx, snapagent.ReportConfig{URL: base, Token: testTokens[httpapi.Composer], Composition: id, Every: 250 * time.Millisecond})
		done <- struct{}{}
	}()
	t.Cleanup(func() { stop(); <-done; <-done })

	var samples int
	for deadline := time.Now().Add(20 * time.Second); samples < 3; time.Sleep(100 * time.Millisecond) {
		st.Pool().QueryRow(context.Background(), `
			SELECT coalesce(sum(samples), 0) FROM analyst_usage_summary
			WHERE composition_id = $1 AND service = 'api' AND host = 'monitor-host' AND origin = 'report'`, id).Scan(&samples)
		if time.Now().After(deadline) {
			t.Fatalf("the agent pushed %d samples of api in 20s", samples)
		}
	}

	// Usage past the allocation: the monitor's verdict.
	push := func(service string, memory int64) (int, map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"service": service, "interval_seconds": 60, "samples": []map[string]any{
			{"at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), "cpu_millicores": 10, "memory_bytes": memory},
			{"at": time.Now().UTC().Format(time.RFC3339), "cpu_millicores": 12, "memory_bytes": memory},
		}})
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions/"+id+"/usage", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, out := composer.Do(t, req)
		return resp.StatusCode, decode(t, "", out)
	}
	code, res := push("api", api.Allocation.MemoryBytes+1)
	if code != 200 || !strings.Contains(fmtJSON(res["overruns"]), "memory") || res["outcome_id"] == nil {
		t.Fatalf("usage past the allocation = %d %v", code, res)
	}
	_, outs, _ := getJSON(t, base+"/v1/compositions/"+id+"/outcomes")
	list := outs["outcomes"].([]any)
	last := list[len(list)-1].(map[string]any)
	svc := last["services"].([]any)[0].(map[string]any)
	if last["verdict"] != "degraded" || last["reporter"] != "monitor:usage" || svc["service"] != "api" || svc["healthy"] != false {
		t.Errorf("the monitor's outcome = %v", last)
	}
	if code, res := push("not-a-service", 1); code != 400 || !strings.Contains(fmtJSON(res), "not-a-service") {
		t.Errorf("usage of a service the composition lacks = %d %v", code, res)
	}

	// The summary sets the allocation against it.
	_, sum, _ := getJSON(t, base+"/v1/history/summary")
	alloc := sum["allocation_vs_usage"].([]any)
	if len(alloc) != 1 || alloc[0].(map[string]any)["samples"].(float64) < 3 {
		t.Errorf("allocation_vs_usage = %v", alloc)
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
