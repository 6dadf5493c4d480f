package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
)

// TestLearningLoop closes the loop over the API on a real database:
// compositions made, outcomes reported, a training run that reads them,
// its model promoted and serving, the next composition decided by it; then
// the outcomes change and the next model scores the same decisions
// differently.
func TestLearningLoop(t *testing.T) {
	t.Parallel()
	agenttest.Library(t)
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	base := startServer(t, dbURL, "--model", agenttest.ModelPath(), "--model-poll", "0", "--catalog", seedCatalog, "--pool", "loop")
	unlimitedPool(t, st, "loop")
	composer, admin, analyst := apitest.New(t), client(t), apitest.New(t)
	composer.Token, analyst.Token = testTokens[httpapi.Composer], testTokens[httpapi.Analyst]
	seed, err := os.ReadFile(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Replace(seed, []byte(`"PRIORITY"`), []byte(`"AI_AGENT"`), 1)

	compose := func() *httpapiComposition {
		t.Helper()
		code, c, _ := submit(t, composer, base, body, "")
		if code != http.StatusAccepted {
			t.Fatalf("POST = %d %v", code, c)
		}
		id := c["id"].(string)
		if final := waitFinished(t, st, id, 60*time.Second); final.Status != domain.StatusSucceeded {
			t.Fatalf("%s: %s", final.Status, final.Error)
		}
		_, got, _ := getJSON(t, base+"/v1/compositions/"+id)
		raw, _ := json.Marshal(got)
		var out httpapiComposition
		json.Unmarshal(raw, &out)
		return &out
	}
	report := func(id, verdict string, services []domain.PlanService) {
		t.Helper()
		var svc []map[string]any
		for _, s := range services {
			svc = append(svc, map[string]any{"service": s.Name, "healthy": verdict == "healthy", "latency_ms": 12.5, "error_rate": 0.001})
		}
		raw, _ := json.Marshal(map[string]any{"verdict": verdict, "services": svc, "metrics": map[string]float64{"p95_latency_ms": 80}})
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions/"+id+"/outcome", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		if resp, out := composer.Do(t, req); resp.StatusCode != http.StatusCreated {
			t.Fatalf("outcome = %d %s", resp.StatusCode, out)
		}
	}
	train := func(promote bool) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"promote": promote})
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/training-runs", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, out := admin.Do(t, req)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/training-runs = %d %s", resp.StatusCode, out)
		}
		run := decode(t, "", out)
		url := fmt.Sprintf("%s/v1/training-runs/%v", base, run["id"])
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			resp, out := analyst.Get(t, url)
			run = decode(t, url, out)
			if resp.StatusCode != 200 || run["status"] == "failed" {
				t.Fatalf("training run = %d %v", resp.StatusCode, run)
			}
			if run["status"] == "succeeded" {
				return run
			}
			if time.Now().After(deadline) {
				t.Fatalf("training run still %v", run["status"])
			}
		}
	}
	// scores is the mean score AI_AGENT gives its choices in a dry run,
	// made by the model the plan names.
	var planModel string
	scores := func() float64 {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/compositions?dry_run=true", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		_, raw := composer.Do(t, req)
		var plan domain.Plan
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		planModel = plan.ModelVersion
		sum, n := 0.0, 0
		for _, c := range plan.Conflicts {
			if c.Resolution != nil && c.Resolution.Score != nil {
				sum += *c.Resolution.Score
				n++
			}
		}
		if n == 0 {
			t.Fatal("the dry run scored nothing")
		}
		return sum / float64(n)
	}

	// Round 1: 30 compositions, 9 of 10 healthy.
	const n = 30
	var made []*httpapiComposition
	for i := range n {
		c := compose()
		made = append(made, c)
		verdict := "healthy"
		if i%10 == 0 {
			verdict = "failed"
		}
		report(c.ID, verdict, c.Plan.Services)
	}
	shipped := scores()
	run1 := train(false) // no champion in the registry: the rule promotes it
	v1, _ := run1["model_version"].(string)
	origins, _ := run1["metrics"].(map[string]any)["origins"].(map[string]any)
	if real, _ := origins["real"].(map[string]any); real["compositions"] != float64(n) || real["weight"] != float64(5) {
		t.Errorf("run 1 reports its history by origin as %v; want %d real compositions weighted 5", origins, n)
	}
	_, agentStatus, _ := getJSON(t, base+"/v1/agent")
	if v1 == "" || agentStatus["model_version"] != v1 {
		t.Fatalf("run 1 made %q; the server serves %v", v1, agentStatus["model_version"])
	}
	after1 := scores()
	if planModel != v1 {
		t.Errorf("the next plan names model %q, want %s", planModel, v1)
	}
	next := compose()
	if next.ModelVersion != v1 {
		t.Errorf("the next composition was decided by %q, want %s", next.ModelVersion, v1)
	}

	// Round 2: the same environments turn out badly (the newest report
	// wins): 9 of 10 failed.
	for i, c := range made {
		verdict := "failed"
		if i%10 == 0 {
			verdict = "healthy"
		}
		report(c.ID, verdict, c.Plan.Services)
	}
	run2 := train(true)
	v2, _ := run2["model_version"].(string)
	after2 := scores()
	t.Logf("mean chosen score: shipped model %.3f, after mostly healthy outcomes (%s) %.3f, after mostly failed (%s) %.3f", shipped, v1, after1, v2, after2)
	if v2 == "" || v2 == v1 || after1-after2 < 0.05 {
		t.Errorf("the changed outcomes did not change the model's scores enough: %s %.3f -> %s %.3f", v1, after1, v2, after2)
	}

	// Models over the API: listed, promotions recorded, rollback to v1.
	_, models, _ := getJSON(t, base+"/v1/models")
	if vs, _ := models["versions"].([]any); len(vs) < 2 {
		t.Errorf("models = %v", models)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/models/rollback", nil)
	resp, raw := admin.Do(t, req)
	if resp.StatusCode != 200 || decode(t, "", raw)["version"] != v1 {
		t.Errorf("rollback = %d %s, want %s back", resp.StatusCode, raw, v1)
	}
	if _, agentStatus, _ := getJSON(t, base+"/v1/agent"); agentStatus["model_version"] != v1 {
		t.Errorf("after the rollback the server serves %v", agentStatus["model_version"])
	}
	_, promotions, _ := getJSON(t, base+"/v1/models/promotions")
	if ps, _ := promotions["promotions"].([]any); len(ps) != 3 || ps[0].(map[string]any)["version"] != v1 || ps[0].(map[string]any)["reason"] != "rollback from "+v2 {
		t.Errorf("promotions = %v, want v1 (rollback from v2), v2, v1", promotions)
	}
	// Roles: analysts read models and runs, cannot train or promote;
	// composers cannot either.
	for _, c := range []*apitest.Client{analyst, composer} {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/models/"+v2+"/promote", nil)
		if resp, _ := c.Do(t, req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s promoting = %d, want 403", c.Token, resp.StatusCode)
		}
		req, _ = http.NewRequest(http.MethodPost, base+"/v1/training-runs", bytes.NewReader([]byte(`{}`)))
		req.Header.Set("Content-Type", "application/json")
		if resp, _ := c.Do(t, req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s training = %d, want 403", c.Token, resp.StatusCode)
		}
	}
	if resp, _ := analyst.Get(t, base+"/v1/models/"+v2); resp.StatusCode != 200 {
		t.Errorf("analyst GET model = %d", resp.StatusCode)
	}
}

// httpapiComposition is GET /v1/compositions/{id} decoded.
type httpapiComposition struct {
	ID           string       `json:"id"`
	ModelVersion string       `json:"model_version"`
	Plan         *domain.Plan `json:"plan"`
}
