package agent_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/negotiate"
)

// fixedScorer scores the i-th row it is given scores[i]: a stand-in for
// onnxruntime in tests of the choosing logic above it (the integration
// tests below score with the real model).
type fixedScorer struct {
	scores []float32
	calls  int
	rows   []int
}

func (f *fixedScorer) Score(x []float32, rows int) ([]float32, error) {
	f.calls++
	f.rows = append(f.rows, rows)
	if len(x) != rows*features.Count {
		panic("bad batch")
	}
	return slices.Clone(f.scores[:rows]), nil
}

// portDecision is a conflict on a port between a's web and b's api, with
// remap and drop for either winner.
func portDecision(port string) domain.Decision {
	a, b := domain.SourceRef("template:a"), domain.SourceRef("template:b")
	d := domain.Decision{Conflict: domain.Conflict{Kind: domain.PortClaim, Key: "port:tcp/" + port,
		Claimants: []domain.Claimant{{Source: a, Owner: "web"}, {Source: b, Owner: "api"}}}}
	for _, w := range []struct {
		win, lose domain.SourceRef
		owner     string
	}{{a, b, "api"}, {b, a, "web"}} {
		d.Candidates = append(d.Candidates,
			domain.Candidate{Resolution: domain.Resolution{Action: domain.Remap, Winner: ref(string(w.win)),
				Changes: []domain.Change{{Op: domain.OpRemapPort, Source: w.lose, Service: w.owner}}}},
			domain.Candidate{Resolution: domain.Resolution{Action: domain.Drop, Winner: ref(string(w.win)),
				Changes: []domain.Change{{Op: domain.OpDropService, Source: w.lose, Service: w.owner}}}})
	}
	return d
}

func TestLearnedScoresValidCandidatesInOneRun(t *testing.T) {
	m := setup(t)
	ds := []domain.Decision{decision(false, false), decision(true, false)}
	// 3 winners × (share, rename, drop); the first decision's shares are
	// rejected, so 6 + 9 rows are scored.
	f := &fixedScorer{scores: []float32{
		0.5, 0.6, 0.7, 0.2, 0.1, 0.3,
		0.9, 0.1, 0.1, 0.88, 0.1, 0.1, 0.2, 0.2, 0.2,
	}}
	l := agent.NewLearned(f, agent.LearnedOptions{})
	choices, err := l.Resolve(context.Background(), m, ds)
	if err != nil {
		t.Fatal(err)
	}
	if f.calls != 1 || f.rows[0] != 15 {
		t.Fatalf("%d Runs of %v rows, want one Run of 15", f.calls, f.rows)
	}
	// Decision 0: the valid candidates are 1, 2 (a's rename and drop), 4,
	// 5 (b's), 7, 8 (c's); the best is b's rename, 0.7 (index 4).
	if choices[0].Candidate != 4 {
		t.Errorf("decision 0 chose %d, want 4 (score 0.7)", choices[0].Candidate)
	}
	if s := choices[0].Scores; s[0] != 0 || math.Abs(s[4]-0.7) > 1e-6 {
		t.Errorf("decision 0 scores %v: want 0 for the rejected share and 0.7 for b's rename", s)
	}
	if mg := choices[0].Margin; mg == nil || math.Abs(*mg-0.1) > 1e-6 || choices[0].Ambiguous {
		t.Errorf("decision 0 margin %v ambiguous %v, want 0.1 and clear", mg, choices[0].Ambiguous)
	}
	// Decision 1: 0.9 against 0.88: ambiguous at the default margin.
	if choices[1].Candidate != 0 || !choices[1].Ambiguous {
		t.Errorf("decision 1: chose %d ambiguous %v, want 0 and ambiguous (margin 0.02)", choices[1].Candidate, choices[1].Ambiguous)
	}
	if !strings.HasPrefix(choices[1].Reason, "AI_AGENT: predicted health 0.900") {
		t.Errorf("reason %q", choices[1].Reason)
	}
	never := agent.NewLearned(&fixedScorer{scores: f.scores}, agent.LearnedOptions{AmbiguousMargin: -1})
	choices, err = never.Resolve(context.Background(), m, ds)
	if err != nil || choices[1].Ambiguous {
		t.Errorf("with a negative margin nothing is ambiguous: %v %v", err, choices[1].Ambiguous)
	}
}

// TestLearnedChoosesJointly: a's web and b's api collide on two ports.
// Remapping api twice is predicted 0.8 × 0.8 = 0.64 healthy; dropping api
// once (0.7) settles both.
func TestLearnedChoosesJointly(t *testing.T) {
	m := setup(t)
	ds := []domain.Decision{portDecision("80"), portDecision("443")}
	scores := []float32{0.8, 0.7, 0.3, 0.2, 0.8, 0.69, 0.3, 0.2}
	choices, err := agent.NewLearned(&fixedScorer{scores: scores}, agent.LearnedOptions{}).Resolve(context.Background(), m, ds)
	if err != nil {
		t.Fatal(err)
	}
	got := []domain.Action{ds[0].Candidates[choices[0].Candidate].Resolution.Action, ds[1].Candidates[choices[1].Candidate].Resolution.Action}
	if !slices.Contains(got, domain.Drop) {
		t.Fatalf("chose %v: want api dropped once, settling both ports", got)
	}
	if c := choices[0]; ds[0].Candidates[c.Candidate].Resolution.Action != domain.Drop || c.Margin == nil || *c.Margin >= 0 || !strings.Contains(c.Reason, "jointly") {
		t.Errorf("decision 0: %+v: want the drop (0.7), below its best alternative, explained as a joint choice", c)
	}
	// When a second remap costs little, the two remaps stay.
	scores = []float32{0.8, 0.7, 0.3, 0.2, 0.95, 0.69, 0.3, 0.2}
	choices, err = agent.NewLearned(&fixedScorer{scores: scores}, agent.LearnedOptions{}).Resolve(context.Background(), m, ds)
	if err != nil {
		t.Fatal(err)
	}
	if choices[0].Candidate != 0 || choices[1].Candidate != 0 {
		t.Errorf("chose %d and %d, want both remaps (0.8 × 0.95 > 0.7)", choices[0].Candidate, choices[1].Candidate)
	}
}

func TestLearnedRefusesBadScores(t *testing.T) {
	m := setup(t)
	ds := []domain.Decision{decision(true, false)}
	bad := &fixedScorer{scores: []float32{0.5, float32(math.NaN()), 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}}
	if _, err := agent.NewLearned(bad, agent.LearnedOptions{}).Resolve(context.Background(), m, ds); err == nil || !strings.Contains(err.Error(), "want a probability") {
		t.Errorf("a NaN score: %v", err)
	}
	none := decision(false, false)
	for i := range none.Candidates {
		none.Candidates[i].Rejected = "no"
	}
	_, err := agent.NewLearned(bad, agent.LearnedOptions{}).Resolve(context.Background(), m, []domain.Decision{none})
	if domain.ErrorCode(err) != domain.EINFEASIBLE || !strings.Contains(err.Error(), "service:db has no valid resolution") {
		t.Errorf("no valid candidate: %v", err)
	}
}

// TestImpactWeighs: the allocator's weight of a service rises with what the
// model predicts dropping it costs.
func TestImpactWeighs(t *testing.T) {
	d := portDecision("80")
	imp := agent.Impact(d, []float64{0.9, 0.3, 0.5, 0.45})
	api := agent.ServiceOf{Source: "template:b", Name: "api"}
	web := agent.ServiceOf{Source: "template:a", Name: "web"}
	// Keeping api: best of remap by a (0.9) and either of b's (0.5); its
	// drop 0.3: impact 0.6. Keeping web: 0.9 against its drop 0.45.
	if math.Abs(imp[api]-0.6) > 1e-9 || math.Abs(imp[web]-0.45) > 1e-9 {
		t.Errorf("impact %v, want api 0.6 and web 0.45", imp)
	}
	l := agent.NewLearned(&fixedScorer{scores: []float32{0.9, 0.3, 0.5, 0.45}}, agent.LearnedOptions{})
	r, weigh := l.ForPlan()
	if _, err := r.Resolve(context.Background(), setup(t), []domain.Decision{d}); err != nil {
		t.Fatal(err)
	}
	members := []composer.Member{
		{Source: domain.Source{Type: domain.TemplateSource, ID: "a", Priority: 1}, Name: "web", Original: "web"},
		{Source: domain.Source{Type: domain.TemplateSource, ID: "b", Priority: 5, Index: 1}, Name: "api-b", Original: "api"},
		{Source: domain.Source{Type: domain.TemplateSource, ID: "b", Priority: 5, Index: 1}, Name: "db", Original: "db"},
	}
	w := weigh(members)
	base := negotiate.ByPriority(members)
	for i, want := range []float64{1.45, 1.6, 1} {
		if math.Abs(w[i]-base[i]*want) > 1e-6 {
			t.Errorf("%s: weight %v, want %v × %v", members[i].Name, w[i], base[i], want)
		}
	}
}
