package simulate

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

// Policy chooses one valid candidate per decision. rows holds the feature
// vectors of every candidate of decisions, in order (features.ExtractAll).
type Policy interface {
	Name() string
	Choose(w *World, decisions []domain.Decision, rows []float32) []int
}

// Run is one composition settled by a policy.
type Run struct {
	World     *World
	Plan      *domain.Plan
	Decisions []domain.Decision
	Choices   []domain.Choice
	Features  [][][]float32
	// Success is the ground truth's probability that the environment is
	// healthy: the product of OK over the choices.
	Success float64
	// OK says, per decision, whether it turned out well (drawn from OK).
	OK []bool
	// Healthy is whether every decision turned out well, with FlipNoise.
	Healthy bool
	// Services is the health of each service of the plan, as the monitor
	// reports it: broken when a decision that touches it went wrong.
	Services []ServiceHealth
}

// ServiceHealth is one service's reported health.
type ServiceHealth struct {
	ServiceRef
	Healthy bool
}

// recorder is the resolver a simulated composition runs with: it hands
// each round to the policy and keeps what it saw.
type recorder struct {
	w      *World
	policy Policy
	env    features.Env
	run    *Run
}

func (r *recorder) Strategy() domain.Strategy { return domain.AIAgent }

func (r *recorder) Resolve(ctx context.Context, m *domain.Manifest, decisions []domain.Decision) ([]domain.Choice, error) {
	rows := features.ExtractAll(m, decisions, r.env)
	var picks []int
	if sp, ok := r.policy.(Serving); ok {
		choices, err := sp.New(r.env).Resolve(ctx, m, decisions)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", sp.Name(), err)
		}
		for _, c := range choices {
			picks = append(picks, c.Candidate)
		}
	} else {
		picks = r.policy.Choose(r.w, decisions, rows)
	}
	if len(picks) != len(decisions) {
		return nil, fmt.Errorf("policy %s chose %d of %d", r.policy.Name(), len(picks), len(decisions))
	}
	out := make([]domain.Choice, len(decisions))
	k := 0
	for i, d := range decisions {
		fs := make([][]float32, len(d.Candidates))
		for j := range d.Candidates {
			fs[j] = rows[k*features.Count : (k+1)*features.Count]
			k++
		}
		c := picks[i]
		if c < 0 || c >= len(d.Candidates) || d.Candidates[c].Rejected != "" {
			return nil, fmt.Errorf("policy %s chose candidate %d of %s, which is not valid", r.policy.Name(), c, d.Conflict.Key)
		}
		out[i] = domain.Choice{Candidate: c, Reason: "simulated " + r.policy.Name()}
		r.run.Decisions = append(r.run.Decisions, d)
		r.run.Choices = append(r.run.Choices, out[i])
		r.run.Features = append(r.run.Features, fs)
		r.run.Success *= r.w.OK(&decisions[i], c)
	}
	return out, nil
}

// Settle composes w with policy, given the sources' history so far, and
// draws the outcome.
func (w *World) Settle(policy Policy, history map[domain.SourceRef]features.SourceHistory) (*Run, error) {
	run := &Run{World: w, Success: 1}
	rec := &recorder{w: w, policy: policy, env: features.Env{History: history, Now: w.Now}, run: run}
	o := orchestrator.New().
		WithSource(domain.TemplateSource, w).
		WithSource(domain.LiveSource, w).
		WithResolver(rec)
	plan, err := o.Plan(context.Background(), w.Manifest)
	if err != nil {
		return nil, fmt.Errorf("simulated composition %s: %w", w.Manifest.Name, err)
	}
	run.Plan = plan
	// The outcome: each decision's draw has its own stream, so that two
	// policies on one world see the same luck.
	var env []ServiceRef
	for _, s := range plan.Services {
		env = append(env, ServiceRef{Name: s.Name, Source: s.Source, Reads: s.Reads})
	}
	broken := make([]bool, len(env))
	run.Healthy = true
	for i, d := range run.Decisions {
		luck := rand.New(rand.NewPCG(w.seed, uint64(w.Index)<<20|uint64(i)<<4|0xd))
		ok := luck.Float64() < w.OK(&run.Decisions[i], run.Choices[i].Candidate)
		run.OK = append(run.OK, ok)
		if !ok {
			run.Healthy = false
			for _, j := range Touched(d.Conflict.Key, d.Conflict.Claimants, env) {
				broken[j] = true
			}
		}
	}
	if rand.New(rand.NewPCG(w.seed, uint64(w.Index)<<8|0xf1)).Float64() < FlipNoise {
		run.Healthy = !run.Healthy
	}
	for j, s := range env {
		run.Services = append(run.Services, ServiceHealth{ServiceRef: s, Healthy: !broken[j]})
	}
	return run, nil
}

// valid returns the indexes of d's valid candidates.
func valid(d *domain.Decision) []int {
	var out []int
	for j, c := range d.Candidates {
		if c.Rejected == "" {
			out = append(out, j)
		}
	}
	return out
}

// Random chooses uniformly among valid candidates: the exploring agent
// whose history the model learns from.
type Random struct{ Seed uint64 }

func (Random) Name() string { return "random" }

func (r Random) Choose(w *World, ds []domain.Decision, _ []float32) []int {
	rng := rand.New(rand.NewPCG(r.Seed, uint64(w.Index)*1_000_003+uint64(len(ds))))
	out := make([]int, len(ds))
	for i := range ds {
		v := valid(&ds[i])
		out[i] = v[rng.IntN(len(v))]
	}
	return out
}

// Baseline is one of the deterministic strategies.
type Baseline struct{ Strategy domain.Strategy }

func (b Baseline) Name() string { return string(b.Strategy) }

func (b Baseline) Choose(w *World, ds []domain.Decision, _ []float32) []int {
	o, err := agent.New(b.Strategy)
	if err != nil {
		panic(err) // a programming error: Baseline takes the three strategies only
	}
	choices, err := o.Resolve(context.Background(), w.Manifest, ds)
	if err != nil {
		panic(err)
	}
	out := make([]int, len(ds))
	for i, c := range choices {
		out[i] = c.Candidate
	}
	return out
}

// Oracle chooses the candidate the ground truth likes best.
type Oracle struct{}

func (Oracle) Name() string { return "oracle" }

func (Oracle) Choose(w *World, ds []domain.Decision, _ []float32) []int {
	out := make([]int, len(ds))
	for i := range ds {
		best := -1.0
		for _, j := range valid(&ds[i]) {
			if p := w.OK(&ds[i], j); p > best {
				best, out[i] = p, j
			}
		}
	}
	return out
}

// Serving chooses as the service does: with the resolver New returns for
// the composition's history and clock (the AI_AGENT resolver, scoring in
// onnxruntime), not from the feature rows directly. The recorder calls
// that resolver; Choose is never called.
type Serving struct {
	Label string
	New   func(env features.Env) domain.Resolver
}

func (s Serving) Name() string { return s.Label }

func (s Serving) Choose(*World, []domain.Decision, []float32) []int {
	panic("simulate: a Serving policy chooses through its resolver")
}

// Scorer scores feature rows (len = Count × n), one score per row.
type Scorer func(rows []float32, n int) []float64

// Model chooses the valid candidate a scorer rates highest.
type Model struct {
	Label string
	Score Scorer
}

func (m Model) Name() string { return m.Label }

func (m Model) Choose(w *World, ds []domain.Decision, rows []float32) []int {
	n := len(rows) / features.Count
	scores := m.Score(rows, n)
	out := make([]int, len(ds))
	k := 0
	for i := range ds {
		best := -1.0
		for j, c := range ds[i].Candidates {
			if c.Rejected == "" && scores[k+j] > best {
				best, out[i] = scores[k+j], j
			}
		}
		k += len(ds[i].Candidates)
	}
	return out
}

// HasDecisions reports whether settling w asks a policy anything, whatever
// the policy: the first kind with conflicts is reached before any choice is
// made, so it is found without settling (only composing).
func (w *World) HasDecisions() (bool, error) {
	snaps := make([]*domain.Snapshot, len(w.Manifest.Sources))
	for i, src := range w.Manifest.Sources {
		s, err := w.Retrieve(context.Background(), src)
		if err != nil {
			return false, err
		}
		snaps[i] = s
	}
	comp, err := composer.New(w.Manifest, snaps)
	if err != nil {
		return false, fmt.Errorf("simulated composition %s: %w", w.Manifest.Name, err)
	}
	for _, kind := range domain.ClaimKinds {
		if len(comp.Decisions(kind)) > 0 {
			return true, nil
		}
	}
	return false, nil
}
