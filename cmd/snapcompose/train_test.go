package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/registry"
)

const podList = "../../data/alibaba-openb/openb_pod_list_default.csv"

var registeredRE = regexp.MustCompile(`(?m)^registered model (\S+) `)

// trainOK runs `train` and returns the version it registered.
func trainOK(t *testing.T, dbURL string, args ...string) (version, stdout string) {
	t.Helper()
	code, stdout, stderr := runWith(t, dbURL, append([]string{"train", "--pods", podList}, args...)...)
	if code != 0 {
		t.Fatalf("train %v: exit code %d; stderr:\n%s", args, code, stderr)
	}
	m := registeredRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("train %v registered nothing:\n%s", args, stdout)
	}
	wantFragments(t, "train's stderr", stderr, "simulating", "loaded", "registered challenger")
	return m[1], stdout
}

// listed returns model list's line of version.
func listed(t *testing.T, dbURL, version string) string {
	t.Helper()
	code, stdout, stderr := runWith(t, dbURL, "model", "list")
	if code != 0 {
		t.Fatalf("model list: exit code %d; stderr:\n%s", code, stderr)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, version+" ") {
			return line
		}
	}
	t.Fatalf("model list does not list %s:\n%s", version, stdout)
	return ""
}

// TestTrainAndModelCommands: train from a simulated history, list, train a
// challenger (promoted or not, saying why), promote by hand and export.
func TestTrainAndModelCommands(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)

	code, stdout, _ := runWith(t, dbURL, "model", "list")
	if code != 0 || !strings.Contains(stdout, "no model versions") {
		t.Errorf("model list of an empty registry: exit %d:\n%s", code, stdout)
	}

	first, stdout := trainOK(t, dbURL, "--simulate", "150", "--seed", "3")
	wantFragments(t, "train's summary", stdout,
		"split by composition", "test metrics", "picked ", "decision quality on", "FIRST_WIN", "LAST_WIN", "PRIORITY", "oracle",
		"= AI_AGENT", "points against the best baseline", "promoted "+first+": no model was promoted")
	if line := listed(t, dbURL, first); !strings.Contains(line, " yes ") {
		t.Errorf("model list does not show %s promoted: %q", first, line)
	}

	// A challenger from more history, without --promote.
	second, stdout := trainOK(t, dbURL, "--simulate", "150", "--seed", "4")
	wantFragments(t, "the challenger's summary", stdout, "champion/challenger on the same", "champion "+first)
	promoted := strings.Contains(stdout, "promoted "+second+": the challenger's log loss")
	kept := strings.Contains(stdout, "not promoted; "+first+" stays the champion: the challenger's log loss")
	if promoted == kept {
		t.Fatalf("the challenger's summary does not say clearly whether it was promoted and why:\n%s", stdout)
	}
	now := first
	if promoted {
		now = second
	}
	if line := listed(t, dbURL, now); !strings.Contains(line, " yes ") {
		t.Errorf("model list does not show the champion %s promoted: %q", now, line)
	}

	// Promote the other by hand, then export it.
	other := map[string]string{first: second, second: first}[now]
	code, stdout, stderr := runWith(t, dbURL, "model", "promote", other)
	if code != 0 || !strings.Contains(stdout, "promoted "+other) {
		t.Fatalf("model promote %s: exit %d\n%s%s", other, code, stdout, stderr)
	}
	line := listed(t, dbURL, other)
	if !strings.Contains(line, " yes ") || !strings.Contains(line, "held out") {
		t.Errorf("model list after promoting %s: %q", other, line)
	}
	dir := t.TempDir()
	code, stdout, stderr = runWith(t, dbURL, "model", "export", "promoted", "--out", dir)
	if code != 0 {
		t.Fatalf("model export promoted: exit %d\n%s%s", code, stdout, stderr)
	}
	onnx, err := os.ReadFile(filepath.Join(dir, registry.ONNXFile))
	if err != nil {
		t.Fatal(err)
	}
	cardJSON, err := os.ReadFile(filepath.Join(dir, registry.CardFile))
	if err != nil {
		t.Fatal(err)
	}
	card, err := registry.DecodeCard(cardJSON)
	if err != nil {
		t.Fatal(err)
	}
	if card.ModelVersion != other || card.ONNXDigest != domain.Digest(onnx) {
		t.Errorf("exported %s with digest %s, its card says %s and %s", other, domain.Digest(onnx), card.ModelVersion, card.ONNXDigest)
	}
	// By name, with the flag first, gives the same files.
	dir2 := t.TempDir()
	if code, _, stderr := runWith(t, dbURL, "model", "export", "--out", dir2, other); code != 0 {
		t.Fatalf("model export --out DIR %s: exit %d\n%s", other, code, stderr)
	}
	card2, _ := os.ReadFile(filepath.Join(dir2, registry.CardFile))
	if string(card2) != string(cardJSON) {
		t.Errorf("exporting %s by name and as promoted gave different cards", other)
	}

	// Bad input against a database.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"model", "promote", "no-such"}, []string{`model version "no-such" does not exist`}},
		{[]string{"model", "export", "no-such", "--out", t.TempDir()}, []string{`model version "no-such" does not exist`}},
		{[]string{"train", "--pods", podList, "--simulate", "5", "--seed", "3"}, []string{"--seed", "seed 3"}},
		{[]string{"train", "--from", "2100-01-01T00:00:00Z"}, []string{"no training rows"}},
	} {
		code, _, stderr := runWith(t, dbURL, tt.args...)
		if code != exitInvalid {
			t.Errorf("%v: exit code %d, want %d; stderr:\n%s", tt.args, code, exitInvalid, stderr)
		}
		wantFragments(t, strings.Join(tt.args, " "), stderr, tt.want...)
	}
}

// TestTrainArgumentErrors needs no database: every one is caught first.
func TestTrainArgumentErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"train"}, "DATABASE_URL is not set"},
		{[]string{"model", "list"}, "DATABASE_URL is not set"},
		{[]string{"train", "--simulate", "-1"}, "--simulate: want 0 or more compositions, got -1"},
		{[]string{"train", "--from", "yesterday"}, `--from: "yesterday" is not an RFC 3339 time`},
		{[]string{"train", "--to", "2026-13-01"}, `--to: "2026-13-01" is not an RFC 3339 time`},
		{[]string{"train", "--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "--from 2026-02-01T00:00:00Z is not before --to"},
		{[]string{"train", "--workers", "0"}, "--workers: want 1 to 64"},
		{[]string{"train", "extra"}, `unexpected argument "extra"`},
		{[]string{"model"}, "model: want `snapcompose model list"},
		{[]string{"model", "delete"}, `model: unknown action "delete"`},
		{[]string{"model", "promote"}, "model promote: name one version"},
		{[]string{"model", "export", "v1"}, "--out DIR is required"},
		{[]string{"serve", "--retrain-every", "-1h"}, "--retrain-every: -1h0m0s is negative"},
	} {
		code, _, stderr := runWith(t, "", tt.args...)
		if code != exitInvalid {
			t.Errorf("%v: exit code %d, want %d; stderr:\n%s", tt.args, code, exitInvalid, stderr)
		}
		wantFragments(t, strings.Join(tt.args, " "), stderr, tt.want)
	}
}

// TestRetrainer: serve's periodic job retrains on the history, and skips a
// tick when no composition came in since its last run.
func TestRetrainer(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	trainOK(t, dbURL, "--simulate", "120", "--seed", "5")
	st := store.New(pool)
	logs := &syncBuffer{}
	r := startRetrainer(context.Background(), st, 100*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		run, err := st.TrainingRun(context.Background(), 2)
		if err == nil && run.Status == store.TrainingSucceeded {
			break
		}
		if err == nil && run.Status == store.TrainingFailed {
			t.Fatalf("the scheduled run failed: %s", run.Error)
		}
		if time.Now().After(deadline) {
			r.stop()
			t.Fatalf("no scheduled training run succeeded in 2 minutes; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a few more ticks
	r.stop()
	if _, err := st.TrainingRun(context.Background(), 3); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("a third training run exists (err %v) though no composition came in; log:\n%s", err, logs.String())
	}
	wantFragments(t, "the retrainer's log", logs.String(), `"msg":"retrained"`, "no new compositions since the last run")
}
