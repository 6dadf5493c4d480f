package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvalAllocationTraceSlice(t *testing.T) {
	t.Parallel()
	args := []string{"eval", "allocation", "--usage", traceSlice, "--group-size", "3"}
	code, stdout, stderr := run(t, "", args...)
	if code != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stdout", stdout,
		"1 evaluated, 2 skipped for too little data in a window: 14, 82",
		"seed 1: 1 composition of 1 VM (1 VM)",
		"cpu       provisioned", "memory    vpa", "memory    ours",
		"ours vs vpa, composition total",
		"ours at other targets")
	if _, again, _ := run(t, "", args...); again != stdout {
		t.Errorf("a second run wrote different output")
	}

	code, stdout, stderr = run(t, "", "eval", "allocation", "--usage", traceSlice, "--seeds", "1,2", "--output", "json", "--workers", "1")
	if code != 0 {
		t.Fatalf("json: exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	var rep struct {
		Trace struct {
			VMs     int `json:"vms_evaluated"`
			Skipped []struct {
				VM string `json:"vm"`
			} `json:"vms_skipped"`
		} `json:"trace"`
		Evaluations []struct {
			Seed       uint64 `json:"seed"`
			Strategies []struct {
				Strategy  string `json:"strategy"`
				Resources []struct {
					Resource     string  `json:"resource"`
					TotalOverrun float64 `json:"total_overrun"`
				} `json:"resources"`
			} `json:"strategies"`
		} `json:"evaluations"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if rep.Trace.VMs != 1 || len(rep.Trace.Skipped) != 2 || len(rep.Evaluations) != 2 || rep.Evaluations[1].Seed != 2 {
		t.Errorf("report: %+v", rep)
	}
	for _, ev := range rep.Evaluations {
		var names []string
		for _, s := range ev.Strategies {
			names = append(names, s.Strategy)
			if len(s.Resources) != 2 || s.Resources[0].Resource != "cpu" || s.Resources[1].Resource != "memory" {
				t.Errorf("seed %d %s: resources %+v", ev.Seed, s.Strategy, s.Resources)
			}
		}
		if strings.Join(names, ",") != "provisioned,vpa,ours" {
			t.Errorf("seed %d: strategies %v", ev.Seed, names)
		}
	}
}

func TestEvalAllocationErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nowhere")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no subcommand", []string{"eval"}, []string{"eval: want `snapcompose eval allocation --usage DIR"}},
		{"unknown subcommand", []string{"eval", "placement"}, []string{"eval: want"}},
		{"no usage", []string{"eval", "allocation"}, []string{"--usage: is required"}},
		{"missing dir", []string{"eval", "allocation", "--usage", missing}, []string{"--usage", "nowhere", "no such file or directory"}},
		{"empty dir", []string{"eval", "allocation", "--usage", t.TempDir()}, []string{"holds no .csv or .csv.gz files"}},
		{"too little data", []string{"eval", "allocation", "--usage", traceSlice, "--train-days", "40"}, []string{"no VM in", "has enough data", "1.csv.gz"}},
		{"group size", []string{"eval", "allocation", "--usage", traceSlice, "--group-size", "0"}, []string{"--group-size: want 1 to 10000 VMs per composition, got 0"}},
		{"target", []string{"eval", "allocation", "--usage", traceSlice, "--target-overrun", "1.5"}, []string{"--target-overrun"}},
		{"limit factor", []string{"eval", "allocation", "--usage", traceSlice, "--limit-factor", "abc"}, []string{"limit-factor"}},
		{"seeds", []string{"eval", "allocation", "--usage", traceSlice, "--seeds", "1,x"}, []string{`--seeds: "x" is not a seed`}},
		{"seed and seeds", []string{"eval", "allocation", "--usage", traceSlice, "--seed", "2", "--seeds", "1,2"}, []string{"--seed and --seeds"}},
		{"output", []string{"eval", "allocation", "--usage", traceSlice, "--output", "yaml"}, []string{`--output: unknown format "yaml"`}},
		{"argument", []string{"eval", "allocation", "--usage", traceSlice, "extra"}, []string{`unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(t, "", tt.args...)
			if code != exitInvalid {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitInvalid, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout is not empty:\n%s", stdout)
			}
			wantFragments(t, "stderr", stderr, tt.want...)
		})
	}
}

func TestEvalAllocationHelp(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, "", "eval", "allocation", "-h")
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	wantFragments(t, "stderr", stderr, "Usage: snapcompose eval allocation", "-target-overrun", "-group-size")
	_, stdout, _ := run(t, "", "help")
	wantFragments(t, "help", stdout, "snapcompose eval allocation --usage DIR")
}
