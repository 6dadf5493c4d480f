package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/plantest"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/onnxexport"
	"github.com/snapcompose/snapcompose/training/registry"
)

// TestAIAgentPlanSeed plans the seed with the committed model: the text plan
// explains every decision (golden), and the JSON plan is valid.
func TestAIAgentPlanSeed(t *testing.T) {
	t.Setenv("ONNXRUNTIME_LIB", agenttest.Library(t))
	model := agenttest.ModelPath()
	code, out, errOut := run(t, "", "plan", "-f", seedTemplates, "--catalog", seedCatalog, "--strategy", "AI_AGENT", "--model", model)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "seed-ai-agent-text", []byte(out))
	for _, want := range []string{"AI_AGENT: predicted health", "against the best alternative", "alternative "} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan does not say %q", want)
		}
	}
	code, out, errOut = run(t, "", "plan", "-f", seedTemplates, "--catalog", seedCatalog, "--strategy", "AI_AGENT", "--model", model, "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	plantest.Validate(t, []byte(out))
	if !strings.Contains(out, `"margin"`) || !strings.Contains(out, `"score"`) {
		t.Errorf("the JSON plan carries no scores or margins")
	}
}

// TestAIAgentModelErrors: a model AI_AGENT cannot use stops the plan with an
// error naming the file and what is wrong; nothing falls back to another
// strategy, and no plan is printed.
func TestAIAgentModelErrors(t *testing.T) {
	t.Setenv("ONNXRUNTIME_LIB", agenttest.Library(t))
	dir := t.TempDir()
	body, err := os.ReadFile(agenttest.ModelPath())
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.onnx")
	if err := os.WriteFile(corrupt, body[:len(body)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	cardBody, err := os.ReadFile(strings.TrimSuffix(agenttest.ModelPath(), ".onnx") + ".card.json")
	if err != nil {
		t.Fatal(err)
	}
	card, err := registry.DecodeCard(cardBody)
	if err != nil {
		t.Fatal(err)
	}
	other := "sha256:" + strings.Repeat("b", 64)
	wrong, err := onnxexport.Marshal(card.Network, onnxexport.Metadata{FeatureSchemaHash: other, FeatureNames: features.Names[:]})
	if err != nil {
		t.Fatal(err)
	}
	wrongPath := filepath.Join(dir, "wrong-schema.onnx")
	if err := os.WriteFile(wrongPath, wrong, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  string // SNAPCOMPOSE_MODEL
		code int
		want []string
	}{
		{"corrupt file", []string{"--model", corrupt}, "", 2, []string{"--model", corrupt, "not a valid ONNX model"}},
		{"wrong feature schema", []string{"--model", wrongPath}, "", 2, []string{wrongPath, other, features.SchemaHash()}},
		{"missing file", []string{"--model", filepath.Join(dir, "nope.onnx")}, "", 2, []string{"nope.onnx", "no such file"}},
		{"SNAPCOMPOSE_MODEL missing", nil, filepath.Join(dir, "gone.onnx"), 1, []string{"AI_AGENT is unavailable", "gone.onnx"}},
		{"bad margin", []string{"--ambiguous-margin", "2"}, "", 2, []string{"--ambiguous-margin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SNAPCOMPOSE_MODEL", tt.env)
			args := append([]string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--strategy", "AI_AGENT"}, tt.args...)
			code, out, errOut := run(t, "", args...)
			refused(t, code, tt.code, out, errOut, tt.want...)
		})
	}
}

// TestAIAgentMissingLibrary runs the CLI in a child process (onnxruntime is
// loaded once per process) with ONNXRUNTIME_LIB naming no file.
func TestAIAgentMissingLibrary(t *testing.T) {
	if os.Getenv("SNAPCOMPOSE_CLI_CHILD") == "1" {
		code, out, errOut := run(t, "", "plan", "-f", seedTemplates, "--catalog", seedCatalog, "--strategy", "AI_AGENT")
		os.Stdout.WriteString(out)
		os.Stderr.WriteString(errOut)
		os.Exit(code)
	}
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAIAgentMissingLibrary$")
	cmd.Env = append(os.Environ(), "SNAPCOMPOSE_CLI_CHILD=1", "ONNXRUNTIME_LIB="+missing)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	refused(t, code, 1, stdout.String(), stderr.String(), "AI_AGENT is unavailable", missing, "make onnxruntime")
}

// TestEvalAgent replays the first 300 held-out compositions of the
// committed model's card through the serving path: every policy has its
// row, and AI_AGENT as served decides as well as the trainer's own forward
// pass of the same network (within noise: float32 onnxruntime, the joint
// choice).
func TestEvalAgent(t *testing.T) {
	t.Setenv("ONNXRUNTIME_LIB", agenttest.Library(t))
	code, out, errOut := run(t, "", "eval", "agent", "--model", agenttest.ModelPath(), "--pods", "../../"+registry.DefaultPods, "--limit", "300", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Compositions int `json:"compositions"`
		HeldOut      int `json:"held_out"`
		Rows         []struct {
			Policy  string  `json:"policy"`
			Success float64 `json:"success"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]float64{}
	for _, r := range rep.Rows {
		got[r.Policy] = r.Success
	}
	if rep.Compositions != 300 || rep.HeldOut < 2000 {
		t.Errorf("judged %d of %d held-out compositions, want 300 of at least 2,000", rep.Compositions, rep.HeldOut)
	}
	for _, p := range []string{"FIRST_WIN", "LAST_WIN", "PRIORITY", "oracle", "mlp", "AI_AGENT (serving)"} {
		if _, ok := got[p]; !ok {
			t.Errorf("no row for %s in %v", p, got)
		}
	}
	if d := got["AI_AGENT (serving)"] - got["mlp"]; d < -0.02 || d > 0.02 {
		t.Errorf("served AI_AGENT %.3f against the trainer's forward pass %.3f", got["AI_AGENT (serving)"], got["mlp"])
	}
	if got["AI_AGENT (serving)"] < got["PRIORITY"]+0.1 {
		t.Errorf("served AI_AGENT %.3f is not clearly above PRIORITY %.3f", got["AI_AGENT (serving)"], got["PRIORITY"])
	}
}

// TestAIAgentPlanReadsTrackRecord: with DATABASE_URL set, AI_AGENT reads
// the sources' track record from the history, and it changes the scores
// (here: template_a has failed every composition it took part in).
func TestAIAgentPlanReadsTrackRecord(t *testing.T) {
	t.Setenv("ONNXRUNTIME_LIB", agenttest.Library(t))
	pool, dbURL := pgtest.NewDatabase(t)
	st := store.New(pool)
	ctx := context.Background()
	m := &domain.Manifest{Name: "history", ConflictResolution: domain.Priority,
		Sources:        []domain.Source{{Type: domain.TemplateSource, ID: "template_a"}},
		ResourceLimits: domain.Resources{CPUMillicores: 1000, MemoryBytes: 1 << 30, DiskBytes: 1 << 30}}
	for range 20 {
		id, err := st.CreateComposition(ctx, m, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordOutcome(ctx, store.Outcome{CompositionID: id, Verdict: "failed", Reporter: "test", ReportedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--strategy", "AI_AGENT", "--model", agenttest.ModelPath(), "--output", "json"}
	code, without, errOut := run(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Setenv("DATABASE_URL", dbURL)
	code, with, errOut := run(t, "", args...)
	if code != 0 {
		t.Fatalf("with DATABASE_URL: exit %d: %s", code, errOut)
	}
	if with == without {
		t.Error("the plan is the same with template_a's record of 20 failures as without any history")
	}
	t.Setenv("DATABASE_URL", "postgres://u:secretpw@127.0.0.1:1/db")
	code, _, errOut = run(t, "", args...)
	if code != 1 || strings.Contains(errOut, "secretpw") || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("an unreachable database: exit %d, stderr %q: want 1, naming host and port, never the password", code, errOut)
	}
}
