package orchestrator_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/manifest"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

// thousandConflicts is a generated composition with about 1,300 conflicts (60
// sources of 60 services over 800 names and 2,000 ports, 40 variables each
// over 1,500 names).
var thousandConflicts = shape{60, 60, 800, 2000, 40, 1500}

// capturingScorer keeps every batch it scores.
type capturingScorer struct {
	agent.Scorer
	mu   sync.Mutex
	rows []float32
}

func (c *capturingScorer) Score(x []float32, n int) ([]float32, error) {
	c.mu.Lock()
	c.rows = append(c.rows, x...)
	c.mu.Unlock()
	return c.Scorer.Score(x, n)
}

// BenchmarkAIAgentScoring scores the candidates of the 1,300-conflict
// composition with the committed model two ways, per iteration: in one
// Run, and one Run per candidate. It reports candidates scored per second
// each way and their ratio.
func BenchmarkAIAgentScoring(b *testing.B) {
	model := agenttest.Model(b)
	cs := &capturingScorer{Scorer: model}
	o, m := aiSetup(b, cs, generated(thousandConflicts)...)
	unbounded(m)
	if _, err := o.Plan(context.Background(), m); err != nil {
		b.Fatal(err)
	}
	rows := cs.rows
	n := len(rows) / features.Count
	var batched, single time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := model.Score(rows, n); err != nil {
			b.Fatal(err)
		}
		batched += time.Since(start)
		start = time.Now()
		for i := range n {
			if _, err := model.Score(rows[i*features.Count:(i+1)*features.Count], 1); err != nil {
				b.Fatal(err)
			}
		}
		single += time.Since(start)
	}
	perBatched := float64(n*b.N) / batched.Seconds()
	perSingle := float64(n*b.N) / single.Seconds()
	b.ReportMetric(float64(n), "candidates")
	b.ReportMetric(perBatched, "cand/s-batched")
	b.ReportMetric(perSingle, "cand/s-one-by-one")
	b.ReportMetric(perBatched/perSingle, "ratio")
}

// BenchmarkAIAgentPlanSeed plans the seed (templates) with AI_AGENT:
// catalog, conflicts, scoring, allocation. It reports p50 and p99.
func BenchmarkAIAgentPlanSeed(b *testing.B) {
	cat, err := catalog.Open("../../examples/seed/catalog")
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open("../../examples/seed/manifest.templates.json")
	if err != nil {
		b.Fatal(err)
	}
	m, err := manifest.Parse(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	m.ConflictResolution = domain.AIAgent
	o := orchestrator.New().WithSource(domain.TemplateSource, cat).
		WithResolver(agent.NewLearned(agenttest.Model(b), agent.LearnedOptions{}))
	latencies(b, o, m)
}

// BenchmarkAIAgentPlan1000Conflicts plans the 1,300-conflict composition
// with AI_AGENT, reporting p50 and p99.
func BenchmarkAIAgentPlan1000Conflicts(b *testing.B) {
	o, m := aiSetup(b, agenttest.Model(b), generated(thousandConflicts)...)
	unbounded(m)
	latencies(b, o, m)
}

// unbounded lifts m's limits so that the benchmark times settling, not a
// refusal.
func unbounded(m *domain.Manifest) {
	m.ResourceLimits = domain.Resources{CPUMillicores: 1e7, MemoryBytes: 1 << 50, DiskBytes: 1 << 50}
}

// latencies plans m in every iteration and reports the p50 and p99 of the
// plans' wall times, and the conflicts settled.
func latencies(b *testing.B, o *orchestrator.Orchestrator, m *domain.Manifest) {
	var ds []time.Duration
	conflicts := 0
	for b.Loop() {
		start := time.Now()
		p, err := o.Plan(context.Background(), m)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		conflicts = len(p.Conflicts)
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(conflicts), "conflicts")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
