package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/simulate"
	"github.com/snapcompose/snapcompose/training/train"
)

func pods(t testing.TB) []simulate.Pod {
	_, file, _, _ := runtime.Caller(0)
	p, err := simulate.LoadPods(filepath.Join(filepath.Dir(file), "..", "..", "data", "alibaba-openb", "openb_pod_list_default.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPipeline simulates history into Postgres, trains from it and judges
// the decisions on held-out compositions. PIPELINE_N sets the number of
// compositions (default 300, enough to exercise every step).
func TestPipeline(t *testing.T) {
	t.Parallel()
	n := 300
	if v, err := strconv.Atoi(os.Getenv("PIPELINE_N")); err == nil {
		n = v
	}
	ctx := context.Background()
	st := store.New(pgtest.NewPool(t))
	const seed = 11
	sim, err := simulate.New(seed, pods(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := pipeline.Simulate(ctx, st, sim, n, 2, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("simulated %d compositions in %s", n, time.Since(start))
	data, err := pipeline.Load(ctx, st, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.Seed = seed
	start = time.Now()
	res, err := pipeline.Fit(data, cfg, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained on %d rows in %s; %s", len(data.X), time.Since(start), res.Reason)
	var names []string
	for _, g := range res.Split.Test.Groups {
		names = append(names, data.Names[g])
	}
	q, err := pipeline.DecisionQuality(ctx, st, sim, seed, names, map[string]*nn.Network{"logistic": res.Logistic, "mlp": res.MLP})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range q.Order {
		t.Logf("%-10s %.3f over %d held-out compositions", p, q.Success[p], q.Compositions)
	}
	for k, m := range res.Metrics {
		t.Logf("%s: AUC %.3f log loss %.3f Brier %.3f", k, m.AUC, m.LogLoss, m.Brier)
	}
}
