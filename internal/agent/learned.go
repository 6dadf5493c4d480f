package agent

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/negotiate"
)

// Scorer scores rows feature vectors given row-major (len rows×F), one
// score each, in one call: a *Model or a *Reloader.
type Scorer interface {
	Score(features []float32, rows int) ([]float32, error)
}

// DefaultAmbiguousMargin is the margin below which a learned choice is
// marked ambiguous: the chosen candidate's predicted health beats the next
// one's by less than 5 points.
const DefaultAmbiguousMargin = 0.05

// LearnedOptions configure the AI_AGENT resolver.
type LearnedOptions struct {
	// History returns the sources' track record the features read; nil
	// means none (every source is new).
	History func(ctx context.Context) (map[domain.SourceRef]features.SourceHistory, error)
	// AmbiguousMargin: a conflict whose chosen score beats the best valid
	// alternative by less is marked ambiguous. 0 means
	// DefaultAmbiguousMargin; negative means never.
	AmbiguousMargin float64
	// Now is the clock live captures' ages are measured against; nil means
	// time.Now.
	Now func() time.Time
}

// Learned is the AI_AGENT strategy: it scores every valid candidate of a
// round of conflicts with the ONNX model in one batched Run and chooses
// jointly (see choose). It is safe for concurrent use; for one plan, use
// ForPlan, which also gives the allocator the model's view of each
// service's value.
type Learned struct {
	scorer Scorer
	opt    LearnedOptions
}

var _ domain.Resolver = (*Learned)(nil)

// NewLearned returns the AI_AGENT resolver scoring with s.
func NewLearned(s Scorer, opt LearnedOptions) *Learned {
	if opt.AmbiguousMargin == 0 {
		opt.AmbiguousMargin = DefaultAmbiguousMargin
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Learned{scorer: s, opt: opt}
}

// Strategy implements domain.Resolver.
func (l *Learned) Strategy() domain.Strategy { return domain.AIAgent }

// Resolve implements domain.Resolver.
func (l *Learned) Resolve(ctx context.Context, m *domain.Manifest, decisions []domain.Decision) ([]domain.Choice, error) {
	choices, _, err := l.resolve(ctx, m, decisions)
	return choices, err
}

// ForPlan returns a resolver for one plan and a weigher that values each
// service for the allocator by what the model predicted while settling
// that plan's conflicts (see Impact). Use the pair for one plan only.
func (l *Learned) ForPlan() (domain.Resolver, negotiate.Weigher) {
	p := &planResolver{l: l, impact: map[ServiceOf]float64{}}
	return p, p.weigh
}

// Scores are the model's scores for a round: per decision, one per
// candidate, NaN for a rejected one.
type Scores [][]float64

func (l *Learned) resolve(ctx context.Context, m *domain.Manifest, decisions []domain.Decision) ([]domain.Choice, Scores, error) {
	if len(decisions) == 0 {
		return nil, nil, nil
	}
	scores, err := l.Score(ctx, m, decisions)
	if err != nil {
		return nil, nil, err
	}
	picks, err := choose(decisions, scores)
	if err != nil {
		return nil, nil, err
	}
	out := make([]domain.Choice, len(decisions))
	for i, d := range decisions {
		c := picks[i]
		ch := domain.Choice{Candidate: c, Scores: make([]float64, len(d.Candidates))}
		best := math.Inf(-1)
		for j, s := range scores[i] {
			ch.Scores[j] = s
			if math.IsNaN(s) {
				ch.Scores[j] = 0 // rejected: never scored
			}
			if j != c && usable(d.Candidates[j]) {
				best = math.Max(best, s)
			}
		}
		reason := fmt.Sprintf("AI_AGENT: predicted health %.3f", scores[i][c])
		if !math.IsInf(best, -1) {
			margin := scores[i][c] - best
			ch.Margin = &margin
			ch.Ambiguous = l.opt.AmbiguousMargin > 0 && margin < l.opt.AmbiguousMargin
			reason += fmt.Sprintf(", %+.4f against the best alternative", margin)
			if margin < 0 {
				reason += " (chosen jointly: it also settles another conflict)"
			}
		}
		ch.Reason = reason
		out[i] = ch
	}
	return out, scores, nil
}

// Score extracts every valid candidate of decisions and scores them all in
// one batched Run. Candidates AI_AGENT may not choose (rejected, or
// overfilling the limits) are not scored: their score is NaN.
func (l *Learned) Score(ctx context.Context, m *domain.Manifest, decisions []domain.Decision) (Scores, error) {
	var h map[domain.SourceRef]features.SourceHistory
	if l.opt.History != nil {
		var err error
		if h, err = l.opt.History(ctx); err != nil {
			return nil, fmt.Errorf("AI_AGENT: reading the sources' track record: %w", err)
		}
	}
	env := features.Env{History: h, Now: l.opt.Now()}
	// Only valid candidates are scored: extract them into one batch.
	valid := make([]domain.Decision, len(decisions))
	for i, d := range decisions {
		valid[i] = d
		valid[i].Candidates = slices.DeleteFunc(slices.Clone(d.Candidates), func(c domain.Candidate) bool { return !usable(c) })
		if len(valid[i].Candidates) == 0 {
			var why []string
			for _, c := range d.Candidates {
				why = append(why, fmt.Sprintf("%s: %s", c.Resolution.Action, c.Rejected+c.Overfills))
			}
			return nil, domain.Errorf(domain.EINFEASIBLE, "AI_AGENT: conflict on %s has no valid resolution (%s)", d.Conflict.Key, strings.Join(why, "; "))
		}
	}
	rows := features.ExtractAll(m, valid, env)
	n := len(rows) / features.Count
	got, err := l.scorer.Score(rows, n)
	if err != nil {
		return nil, fmt.Errorf("AI_AGENT: scoring %d candidates: %w", n, err)
	}
	if len(got) != n {
		return nil, fmt.Errorf("AI_AGENT: the model gave %d scores for %d candidates", len(got), n)
	}
	out := make(Scores, len(decisions))
	k := 0
	for i, d := range decisions {
		out[i] = make([]float64, len(d.Candidates))
		for j, c := range d.Candidates {
			if !usable(c) {
				out[i][j] = math.NaN()
				continue
			}
			s := float64(got[k])
			k++
			if math.IsNaN(s) || s < 0 || s > 1 {
				return nil, fmt.Errorf("AI_AGENT: the model scored candidate %d of %s %v: want a probability in [0, 1]", j, d.Conflict.Key, s)
			}
			out[i][j] = s
		}
	}
	return out, nil
}

// choose picks one valid candidate per decision to maximise the predicted
// health of the whole round, the product of the chosen candidates' scores,
// where a decision that another choice makes moot counts as settled. A
// decision is moot when every change its candidate makes is to a service
// another chosen candidate drops: one drop can settle several conflicts
// (a service that loses two ports, a service whose dependency is dropped
// together with it). Without such overlaps this is each decision's best
// candidate; with them, coordinate ascent from there, a candidate at a
// time, until no change improves the round (each step strictly improves a
// finite objective over a finite set, so it ends; it is bounded anyway).
func choose(decisions []domain.Decision, scores Scores) ([]int, error) {
	picks := make([]int, len(decisions))
	for i, d := range decisions {
		picks[i] = -1
		for j, c := range d.Candidates {
			if usable(c) && (picks[i] < 0 || scores[i][j] > scores[i][picks[i]]) {
				picks[i] = j
			}
		}
		if picks[i] < 0 {
			return nil, domain.Errorf(domain.EINFEASIBLE, "AI_AGENT: conflict on %s has no valid resolution", d.Conflict.Key)
		}
	}
	// Only drops couple decisions; without any, the independent best is
	// the joint best.
	drops := false
	for _, d := range decisions {
		for _, c := range d.Candidates {
			drops = drops || usable(c) && c.Resolution.Action == domain.Drop
		}
	}
	if !drops || len(decisions) < 2 {
		return picks, nil
	}
	// droppers lists, per service, the decisions whose choice drops it;
	// the first of them settles it, and the others' changes to it are moot.
	droppers := map[ServiceOf][]int{}
	// targeting lists, per service, the decisions whose choice changes it:
	// the terms a change of its droppers can move.
	targeting := map[ServiceOf][]int{}
	edit := func(i int, c domain.Candidate, add bool) {
		for _, ch := range c.Resolution.Changes {
			if ch.Service == "" {
				continue
			}
			s := ServiceOf{Source: ch.Source, Name: ch.Service}
			lists := []map[ServiceOf][]int{targeting}
			if ch.Op == domain.OpDropService {
				lists = append(lists, droppers)
			}
			for _, l := range lists {
				if add {
					if !slices.Contains(l[s], i) {
						l[s] = append(l[s], i)
					}
				} else {
					l[s] = slices.DeleteFunc(l[s], func(j int) bool { return j == i })
				}
			}
		}
	}
	for i, d := range decisions {
		edit(i, d.Candidates[picks[i]], true)
	}
	term := func(i int) float64 {
		if moot(i, decisions[i].Candidates[picks[i]].Resolution.Changes, droppers) {
			return 0
		}
		return math.Log(math.Max(scores[i][picks[i]], 1e-12))
	}
	// affected are the decisions whose term a switch of decision i between
	// candidates a and b can move: i, and those changing a service that a
	// or b drops.
	affected := func(i int, a, b domain.Candidate) []int {
		out := []int{i}
		for _, c := range []domain.Candidate{a, b} {
			for _, ch := range c.Resolution.Changes {
				if ch.Op == domain.OpDropService {
					for _, j := range targeting[ServiceOf{Source: ch.Source, Name: ch.Service}] {
						if !slices.Contains(out, j) {
							out = append(out, j)
						}
					}
				}
			}
		}
		return out
	}
	sum := func(ix []int) float64 {
		t := 0.0
		for _, j := range ix {
			t += term(j)
		}
		return t
	}
	for pass := 0; pass < 20; pass++ {
		improved := false
		for i, d := range decisions {
			for j, c := range d.Candidates {
				was := picks[i]
				if j == was || !usable(c) {
					continue
				}
				old := d.Candidates[was]
				ix := affected(i, old, c)
				before := sum(ix)
				edit(i, old, false)
				edit(i, c, true)
				picks[i] = j
				if sum(ix) > before+1e-12 {
					improved = true
					continue
				}
				edit(i, c, false)
				edit(i, old, true)
				picks[i] = was
			}
		}
		if !improved {
			break
		}
	}
	return picks, nil
}

// usable reports whether AI_AGENT may choose c: not rejected, and not
// overfilling the limits at minimums when another candidate does not.
func usable(c domain.Candidate) bool { return c.Rejected == "" && c.Overfills == "" }

// moot reports whether every change decision i's candidate makes is to a
// service that an earlier-listed decision's choice drops (droppers lists
// the deciding decisions per service): the orchestrator then finds the
// service gone and the change has nothing to do.
func moot(i int, changes []domain.Change, droppers map[ServiceOf][]int) bool {
	if len(changes) == 0 {
		return false
	}
	for _, ch := range changes {
		if ch.Service == "" {
			return false // a variable, a file or a volume: no drop settles it
		}
		by := droppers[ServiceOf{Source: ch.Source, Name: ch.Service}]
		if len(by) == 0 || slices.Min(by) >= i {
			return false
		}
	}
	return true
}

// ServiceOf names a service of a source.
type ServiceOf struct {
	Source domain.SourceRef
	Name   string
}

// planResolver is a Learned resolver for one plan: it remembers, per
// service, what the model predicted of dropping it.
type planResolver struct {
	l      *Learned
	impact map[ServiceOf]float64
}

func (p *planResolver) Strategy() domain.Strategy { return domain.AIAgent }

func (p *planResolver) Resolve(ctx context.Context, m *domain.Manifest, decisions []domain.Decision) ([]domain.Choice, error) {
	choices, scores, err := p.l.resolve(ctx, m, decisions)
	if err != nil {
		return nil, err
	}
	for i, d := range decisions {
		for s, v := range Impact(d, scores[i]) {
			p.impact[s] = math.Max(p.impact[s], v)
		}
	}
	return choices, nil
}

// Impact is, for each service a decision could drop, how much health the
// model predicts the environment loses without it: the best score of a
// candidate that keeps it less the best score of one that drops it, at
// least 0.
func Impact(d domain.Decision, scores []float64) map[ServiceOf]float64 {
	out := map[ServiceOf]float64{}
	for j, c := range d.Candidates {
		if !usable(c) || c.Resolution.Action != domain.Drop {
			continue
		}
		for _, ch := range c.Resolution.Changes {
			if ch.Op != domain.OpDropService {
				continue
			}
			s := ServiceOf{Source: ch.Source, Name: ch.Service}
			keep := math.Inf(-1)
			for k, o := range d.Candidates {
				if usable(o) && !drops(o, s) {
					keep = math.Max(keep, scores[k])
				}
			}
			if !math.IsInf(keep, -1) {
				out[s] = math.Max(out[s], math.Max(keep-scores[j], 0))
			}
		}
	}
	return out
}

func drops(c domain.Candidate, s ServiceOf) bool {
	for _, ch := range c.Resolution.Changes {
		if ch.Op == domain.OpDropService && ch.Source == s.Source && ch.Service == s.Name {
			return true
		}
	}
	return false
}

// weigh is the allocator's weight by priority (negotiate.ByPriority), each
// raised by the model's predicted impact of losing the service: a service
// the model says the environment cannot do without is squeezed and dropped
// last. A renamed service carries its original name's impact.
func (p *planResolver) weigh(members []composer.Member) []float64 {
	w := negotiate.ByPriority(members)
	for i, m := range members {
		w[i] *= 1 + p.impact[ServiceOf{Source: m.Source.Ref(), Name: m.Original}]
	}
	return w
}
