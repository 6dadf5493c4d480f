package agent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
)

func ref(s string) *domain.SourceRef { r := domain.SourceRef(s); return &r }

func setup(t *testing.T) *domain.Manifest {
	t.Helper()
	return &domain.Manifest{Sources: []domain.Source{
		{Type: domain.TemplateSource, ID: "a", Priority: 1, Index: 0},
		{Type: domain.TemplateSource, ID: "b", Priority: 5, Index: 1},
		{Type: domain.TemplateSource, ID: "c", Priority: 5, Index: 2},
	}}
}

// decision builds a service conflict among a, b and c whose candidates are
// share (rejected unless shareOK), rename and drop for every winner.
func decision(shareOK bool, optionalLosers bool) domain.Decision {
	d := domain.Decision{Conflict: domain.Conflict{Kind: domain.ServiceClaim, Key: "service:db"}}
	for _, id := range []string{"a", "b", "c"} {
		d.Conflict.Claimants = append(d.Conflict.Claimants, domain.Claimant{Source: domain.SourceRef("template:" + id), Owner: "db", Optional: optionalLosers})
		rejected := ""
		if !shareOK {
			rejected = "runs image mysql:8, not postgres:16"
		}
		for _, a := range []struct {
			action   domain.Action
			rejected string
		}{{domain.Share, rejected}, {domain.Rename, ""}, {domain.Drop, ""}} {
			d.Candidates = append(d.Candidates, domain.Candidate{
				Resolution: domain.Resolution{Action: a.action, Winner: ref("template:" + id)},
				Rejected:   a.rejected,
			})
		}
	}
	return d
}

func TestOrderedStrategies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		strategy   domain.Strategy
		d          domain.Decision
		wantWinner string
		wantAction domain.Action
		wantReason string
	}{
		{"first win renames when share is rejected", domain.FirstWin, decision(false, false), "template:a", domain.Rename, "listed first"},
		{"last win", domain.LastWin, decision(false, false), "template:c", domain.Rename, "listed last"},
		{"priority breaks ties by order", domain.Priority, decision(false, false), "template:b", domain.Rename, "highest priority (5)"},
		{"share is preferred when valid", domain.FirstWin, decision(true, false), "template:a", domain.Share, ""},
		{"optional losers are dropped, not duplicated", domain.FirstWin, decision(false, true), "template:a", domain.Drop, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := agent.New(tt.strategy)
			if err != nil {
				t.Fatal(err)
			}
			choices, err := r.Resolve(context.Background(), setup(t), []domain.Decision{tt.d})
			if err != nil {
				t.Fatal(err)
			}
			got := tt.d.Candidates[choices[0].Candidate].Resolution
			if string(*got.Winner) != tt.wantWinner || got.Action != tt.wantAction {
				t.Errorf("chose %s won by %s, want %s won by %s", got.Action, *got.Winner, tt.wantAction, tt.wantWinner)
			}
			if !strings.Contains(choices[0].Reason, tt.wantReason) || !strings.HasPrefix(choices[0].Reason, string(tt.strategy)) {
				t.Errorf("reason = %q, want it to start with %s and mention %q", choices[0].Reason, tt.strategy, tt.wantReason)
			}
		})
	}
}

func TestOrderedRefusesWhatItCannotDo(t *testing.T) {
	t.Parallel()
	if _, err := agent.New(domain.AIAgent); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("New(AI_AGENT) err = %v, want EINVALID", err)
	}
	d := decision(false, false)
	for i := range d.Candidates {
		d.Candidates[i].Rejected = "no"
	}
	_, err := agent.NewFirstWin().Resolve(context.Background(), setup(t), []domain.Decision{d})
	if err == nil || !strings.Contains(err.Error(), "no valid candidate") {
		t.Errorf("err = %v, want no valid candidate", err)
	}
	d = decision(false, false)
	d.Conflict.Claimants[0].Source = "template:stranger"
	if _, err := agent.NewFirstWin().Resolve(context.Background(), setup(t), []domain.Decision{d}); err == nil {
		t.Errorf("a claimant outside the manifest was accepted")
	}
}
