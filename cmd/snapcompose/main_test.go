package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/plantest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	seedCatalog   = "../../examples/seed/catalog"
	seedTemplates = "../../examples/seed/manifest.templates.json"
	seedManifest  = "../../examples/seed/manifest.json"
)

// run runs the program in-process, as a user would from a shell.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut}
	code = m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update if the change is intended):\n--- got ---\n%s", path, got)
	}
}

func TestGoldenPlans(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"seed-priority-text", []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog}, 0},
		{"seed-priority-json", []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--output", "json"}, 0},
		{"seed-first-win-json", []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--output", "json", "--strategy", "FIRST_WIN"}, 0},
		{"seed-last-win-json", []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--output", "json", "--strategy", "LAST_WIN"}, 0},
		{"infeasible-text", []string{"plan", "-f", "testdata/infeasible.json", "--catalog", seedCatalog}, 1},
		{"infeasible-json", []string{"plan", "-f", "testdata/infeasible.json", "--catalog", seedCatalog, "--output", "json"}, 1},
		{"tight-text", []string{"plan", "-f", "testdata/tight.json", "--catalog", seedCatalog}, 0},
		{"tight-json", []string{"plan", "-f", "testdata/tight.json", "--catalog", seedCatalog, "--output", "json"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(t, "", tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			golden(t, tt.name, []byte(stdout))
			if strings.HasSuffix(tt.name, "-json") {
				plantest.Validate(t, []byte(stdout))
			}
			_, again, _ := run(t, "", tt.args...)
			if again != stdout {
				t.Errorf("a second run gave different output")
			}
		})
	}
}

// TestSeedPlanCoversTheContract checks what the issue asks of the example:
// conflicts of at least four kinds, and the plan keys DESIGN.md lists.
func TestSeedPlanCoversTheContract(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run(t, "", "plan", "-f", seedTemplates, "--catalog", seedCatalog, "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var plan map[string]any
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"name", "strategy", "services", "files", "env", "conflicts", "limits", "totals", "dropped"} {
		if _, ok := plan[key]; !ok {
			t.Errorf("plan has no %q key", key)
		}
	}
	kinds := map[string]bool{}
	for _, c := range plan["conflicts"].([]any) {
		kinds[c.(map[string]any)["kind"].(string)] = true
	}
	if len(kinds) < 4 {
		t.Errorf("conflict kinds = %v, want at least four", kinds)
	}
	if strings.Contains(stdout, "s3cr3t") || strings.Contains(stdout, "change-me") {
		t.Errorf("a secret value reached the plan")
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantErr  []string // fragments of stderr
	}{
		{"unknown strategy names the field", "", []string{"plan", "-f", "testdata/bad-strategy.json", "--catalog", seedCatalog}, 2,
			[]string{"testdata/bad-strategy.json", "/conflict_resolution", "BEST"}},
		{"bad cpu names the field", "", []string{"plan", "-f", "testdata/bad-cpu.json", "--catalog", seedCatalog}, 2,
			[]string{"/resource_limits/cpu", `"eight"`}},
		{"live source needs a hosts file", "", []string{"plan", "-f", seedManifest, "--catalog", seedCatalog}, 2,
			[]string{"/sources/1", "live:production_server_1:/var/app", "--hosts"}},
		{"unknown template", "", []string{"plan", "-f", "testdata/unknown-template.json", "--catalog", seedCatalog}, 2,
			[]string{"template_z", "template_a"}},
		{"infeasible limits", "", []string{"plan", "-f", "testdata/infeasible.json", "--catalog", seedCatalog}, 1,
			[]string{"does not fit", "Insufficient memory", "the limit is 4GiB", "448MiB short", "db-template_b 2GiB (template:template_b)", "1 optional service dropped"}},
		{"agent without a model", "", []string{"plan", "-f", "testdata/ai-agent.json", "--catalog", seedCatalog}, 1,
			[]string{"AI_AGENT is unavailable", "model/negotiator.onnx"}},
		{"missing manifest file", "", []string{"plan", "-f", "testdata/nope.json", "--catalog", seedCatalog}, 2,
			[]string{"testdata/nope.json"}},
		{"missing catalog directory", "", []string{"plan", "-f", seedTemplates, "--catalog", "testdata/no-catalog"}, 2,
			[]string{"testdata/no-catalog"}},
		{"no catalog flag", "", []string{"plan", "-f", seedTemplates}, 2, []string{"--catalog"}},
		{"no manifest flag", "", []string{"plan", "--catalog", seedCatalog}, 2, []string{"-f"}},
		{"unknown output", "", []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--output", "yaml"}, 2,
			[]string{"--output", "yaml", "text or json"}},
		{"unknown strategy flag", "", []string{"plan", "-f", seedTemplates, "--catalog", seedCatalog, "--strategy", "RANDOM"}, 2,
			[]string{"--strategy", "RANDOM"}},
		{"unknown flag", "", []string{"plan", "--frobnicate"}, 2, []string{"frobnicate"}},
		{"unknown command", "", []string{"deploy"}, 2, []string{"deploy"}},
		{"manifest from stdin", `{"name": 1}`, []string{"plan", "-f", "-", "--catalog", seedCatalog}, 2,
			[]string{"standard input", "/name"}},
		{"no command", "", nil, 2, []string{"Usage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := run(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			for _, frag := range tt.wantErr {
				if !strings.Contains(stderr, frag) {
					t.Errorf("stderr does not mention %q:\n%s", frag, stderr)
				}
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("stderr shows a panic:\n%s", stderr)
			}
		})
	}
}
