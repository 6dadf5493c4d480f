package orchestrator_test

// AI_AGENT end to end: the committed model in the real onnxruntime
// (internal/agenttest finds the library), planning random compositions.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
	"github.com/snapcompose/snapcompose/internal/plantest"
)

// aiSetup is setup with the AI_AGENT resolver scoring with s.
func aiSetup(t testing.TB, s agent.Scorer, sources ...source) (*orchestrator.Orchestrator, *domain.Manifest) {
	t.Helper()
	o, m := setup(t, domain.AIAgent, sources...)
	o.WithResolver(agent.NewLearned(s, agent.LearnedOptions{}))
	return o, m
}

// compositions returns n random compositions with at least one conflict.
func compositions(n int, seed uint64) [][]source {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out [][]source
	for len(out) < n {
		out = append(out, randomSources(rng))
	}
	return out
}

func planJSON(t testing.TB, o *orchestrator.Orchestrator, m *domain.Manifest) []byte {
	t.Helper()
	p, err := o.Plan(context.Background(), m)
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAIAgentExplainsEveryConflict: plans are valid, and every settled
// conflict carries its score, its best alternatives in order, the margin
// between them and the ambiguity mark the margin implies.
func TestAIAgentExplainsEveryConflict(t *testing.T) {
	model := agenttest.Model(t)
	conflicts, ambiguous := 0, 0
	for i, srcs := range compositions(60, 1) {
		o, m := aiSetup(t, model, srcs...)
		m.Name = fmt.Sprintf("random-%d", i)
		p, err := o.Plan(context.Background(), m)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		plantest.ValidatePlan(t, p)
		checkInvariants(t, p)
		for _, c := range p.Conflicts {
			r := c.Resolution
			if c.Kind.Compute() {
				continue
			}
			conflicts++
			if r.Score == nil || *r.Score < 0 || *r.Score > 1 {
				t.Fatalf("%s %s: score %v", m.Name, c.Key, r.Score)
			}
			if !slices.IsSortedFunc(r.Alternatives, func(a, b domain.Alternative) int { return -cmpFloat(*a.Score, *b.Score) }) {
				t.Errorf("%s %s: alternatives not best first", m.Name, c.Key)
			}
			if len(r.Alternatives) == 0 {
				if r.Margin != nil || r.Ambiguous {
					t.Errorf("%s %s: margin %v ambiguous %v without alternatives", m.Name, c.Key, r.Margin, r.Ambiguous)
				}
				continue
			}
			want := *r.Score - *r.Alternatives[0].Score
			if r.Margin == nil || math.Abs(*r.Margin-want) > 1e-9 {
				t.Errorf("%s %s: margin %v, want %v", m.Name, c.Key, r.Margin, want)
			}
			if r.Ambiguous != (want < agent.DefaultAmbiguousMargin) {
				t.Errorf("%s %s: ambiguous %v with margin %.3f", m.Name, c.Key, r.Ambiguous, want)
			}
			if r.Ambiguous {
				ambiguous++
			}
		}
	}
	if conflicts < 100 {
		t.Fatalf("only %d conflicts settled: the test exercises too little", conflicts)
	}
	t.Logf("%d conflicts explained, %d ambiguous", conflicts, ambiguous)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkingScorer scores each batch with the model and checks that every
// row alone scores the same.
type checkingScorer struct {
	t              testing.TB
	model          *agent.Model
	batches, rowsN atomic.Int64
}

func (c *checkingScorer) Score(x []float32, n int) ([]float32, error) {
	got, err := c.model.Score(x, n)
	if err != nil {
		return nil, err
	}
	c.batches.Add(1)
	c.rowsN.Add(int64(n))
	for i := range n {
		one, err := c.model.Score(x[i*features.Count:(i+1)*features.Count], 1)
		if err != nil {
			return nil, err
		}
		if math.Abs(float64(one[0]-got[i])) > 1e-6 {
			c.t.Errorf("row %d of %d: %v batched, %v alone", i, n, got[i], one[0])
		}
	}
	return got, nil
}

func TestAIAgentBatchedEqualsOneByOne(t *testing.T) {
	cs := &checkingScorer{t: t, model: agenttest.Model(t)}
	for _, srcs := range compositions(30, 2) {
		o, m := aiSetup(t, cs, srcs...)
		planJSON(t, o, m)
	}
	if cs.rowsN.Load() < 200 || cs.rowsN.Load() <= cs.batches.Load() {
		t.Fatalf("%d rows in %d batches: the test exercises too little batching", cs.rowsN.Load(), cs.batches.Load())
	}
	t.Logf("%d candidates in %d batched Runs", cs.rowsN.Load(), cs.batches.Load())
}

// TestAIAgentConcurrentPlansMatchSerial plans the same compositions from
// 32 goroutines sharing one model and compares with serial plans.
func TestAIAgentConcurrentPlansMatchSerial(t *testing.T) {
	model := agenttest.Model(t)
	comps := compositions(20, 3)
	serial := make([][]byte, len(comps))
	for i, srcs := range comps {
		o, m := aiSetup(t, model, srcs...)
		serial[i] = planJSON(t, o, m)
	}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range comps {
				i := (k + g) % len(comps)
				o, m := aiSetup(t, model, comps[i]...)
				p, err := o.Plan(context.Background(), m)
				if err != nil {
					t.Errorf("goroutine %d, composition %d: %v", g, i, err)
					return
				}
				b, _ := json.Marshal(p)
				if !bytes.Equal(b, serial[i]) {
					t.Errorf("goroutine %d, composition %d: plan differs from the serial one", g, i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestAIAgentHotReloadUnderLoad swaps the model (two copies of the
// committed one, and a corrupt file that must be refused) while plans run:
// none fails, and every plan is the one the model gives serially.
func TestAIAgentHotReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	body, err := os.ReadFile(agenttest.ModelPath())
	if err != nil {
		t.Fatal(err)
	}
	copies := []string{filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.onnx")}
	for _, p := range copies {
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := filepath.Join(dir, "corrupt.onnx")
	if err := os.WriteFile(corrupt, body[:len(body)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := agent.LoadModel(copies[0], agenttest.Options(t))
	if err != nil {
		t.Fatal(err)
	}
	r := agent.NewReloader(first)
	defer r.Close()
	comps := compositions(8, 4)
	want := make([][]byte, len(comps))
	for i, srcs := range comps {
		o, m := aiSetup(t, r, srcs...)
		want[i] = planJSON(t, o, m)
	}
	stop := make(chan struct{})
	var plans atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (k + g) % len(comps)
				o, m := aiSetup(t, r, comps[i]...)
				p, err := o.Plan(context.Background(), m)
				if err != nil {
					t.Errorf("a plan failed during a reload: %v", err)
					return
				}
				if b, _ := json.Marshal(p); !bytes.Equal(b, want[i]) {
					t.Errorf("composition %d planned differently during a reload", i)
					return
				}
				plans.Add(1)
			}
		}()
	}
	for k := range 30 {
		if err := r.Reload(copies[k%2]); err != nil {
			t.Errorf("reload %d: %v", k, err)
		}
		if err := r.Reload(corrupt); err == nil || !bytes.Contains([]byte(err.Error()), []byte("corrupt.onnx")) {
			t.Errorf("reloading a corrupt model: %v, want an error naming the file", err)
		}
	}
	close(stop)
	wg.Wait()
	if plans.Load() == 0 {
		t.Fatal("no plan ran during the reloads")
	}
	t.Logf("%d plans during 60 reloads (30 refused)", plans.Load())
}

// TestEveryCandidateKeepsPlansValid carries out every kind of candidate:
// a resolver that takes the k-th usable candidate of each decision, for
// every k, over random compositions. Each plan must stay valid: unique
// names and host ports, no dangling dependency, no service lost without a
// trace.
func TestEveryCandidateKeepsPlansValid(t *testing.T) {
	seen := map[string]int{}
	for i, srcs := range compositions(200, 5) {
		for k := range 6 {
			o, m := setup(t, domain.Priority, srcs...)
			rot := &rotating{k: k, seen: seen}
			o.WithResolver(rot)
			m.ConflictResolution = domain.AIAgent
			m.Name = fmt.Sprintf("random-%d-%d", i, k)
			p, err := o.Plan(context.Background(), m)
			if err != nil && domain.ErrorCode(err) != domain.EINFEASIBLE {
				t.Fatalf("%s: %v", m.Name, err)
			}
			if p != nil {
				plantest.ValidatePlan(t, p)
				checkInvariants(t, p)
				checkNothingLost(t, m.Name, srcs, p)
			}
		}
	}
	for _, want := range []string{"service/share", "service/rename", "service/drop", "volume/rename", "volume/share", "port/remap", "port/drop", "env/keep", "env/merge", "file/keep"} {
		if seen[want] == 0 {
			t.Errorf("no %s candidate was carried out", want)
		}
	}
	t.Logf("carried out: %v", seen)
}

// rotating takes the k-th usable candidate (cyclically) of every decision.
type rotating struct {
	k    int
	seen map[string]int
}

func (r *rotating) Strategy() domain.Strategy { return domain.AIAgent }

func (r *rotating) Resolve(_ context.Context, _ *domain.Manifest, ds []domain.Decision) ([]domain.Choice, error) {
	out := make([]domain.Choice, len(ds))
	for i, d := range ds {
		var ok []int
		for j, c := range d.Candidates {
			if c.Rejected == "" {
				ok = append(ok, j)
			}
		}
		if len(ok) == 0 {
			return nil, fmt.Errorf("%s: no valid candidate", d.Conflict.Key)
		}
		c := ok[(r.k+i)%len(ok)]
		out[i] = domain.Choice{Candidate: c}
		r.seen[fmt.Sprintf("%s/%s", d.Conflict.Kind, d.Candidates[c].Resolution.Action)]++
	}
	return out, nil
}
