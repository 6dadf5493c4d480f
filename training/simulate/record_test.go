package simulate_test

import (
	"context"
	"slices"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/simulate"
)

// TestRecordedCandidatesReExtract writes simulated compositions through the
// store, reads the training rows back, and re-extracts every recorded
// candidate from what the store kept: the same vector, bit for bit.
func TestRecordedCandidatesReExtract(t *testing.T) {
	t.Parallel()
	st := store.New(pgtest.NewPool(t))
	ctx := context.Background()
	s := simulator(t, 3)
	type recorded struct {
		run    *simulate.Run
		before simulate.History
	}
	byID := map[string]recorded{}
	err := s.Generate(25, func(run *simulate.Run, before simulate.History) error {
		id, err := simulate.Record(ctx, st, run)
		byID[id] = recorded{run, before}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.TrainingRows(ctx, features.SchemaHash(), simulate.Start.AddDate(-10, 0, 0), simulate.Start.AddDate(100, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, r := range byID {
		want += len(r.run.Decisions)
	}
	if len(rows) != want {
		t.Fatalf("%d training rows, want one per decision: %d", len(rows), want)
	}
	checked := 0
	for id, r := range byID {
		conflicts, err := st.Conflicts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(conflicts) != len(r.run.Decisions) {
			t.Fatalf("%s: %d conflicts recorded, %d decided", id, len(conflicts), len(r.run.Decisions))
		}
		env := features.Env{History: r.before, Now: r.run.World.Now}
		for i, cr := range conflicts {
			// The decision as the store has it: conflict, claimants and
			// each candidate's action and winner; the context is the
			// composition's services as recorded with its snapshots.
			d := domain.Decision{Conflict: cr.Conflict, Context: r.run.Decisions[i].Context}
			d.Conflict.Resolution = nil
			for _, c := range cr.Candidates {
				d.Candidates = append(d.Candidates, domain.Candidate{Resolution: domain.Resolution{Action: c.Action, Winner: c.Winner}, Rejected: c.Rejected})
			}
			for j, c := range cr.Candidates {
				if c.FeatureSchema != features.SchemaHash() {
					t.Fatalf("candidate recorded with schema %q", c.FeatureSchema)
				}
				got := features.Extract(r.run.World.Manifest, &d, j, env)
				if !slices.Equal(got, c.Features) {
					t.Fatalf("%s conflict %d (%s) candidate %d: re-extracted\n%v\nrecorded\n%v", id, i, cr.Conflict.Key, j, got, c.Features)
				}
				checked++
			}
		}
	}
	// The sources' track record as the store counts it.
	want2 := map[domain.SourceRef][2]int{}
	for _, r := range byID {
		for _, src := range r.run.World.Manifest.Sources {
			x := want2[src.Ref()]
			x[0]++
			if r.run.Healthy {
				x[1]++
			}
			want2[src.Ref()] = x
		}
	}
	got2, err := st.SourceHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got2) != len(want2) {
		t.Fatalf("source history of %d sources, want %d", len(got2), len(want2))
	}
	for ref, w := range want2 {
		if got2[ref] != w {
			t.Errorf("%s: history %v, want %v", ref, got2[ref], w)
		}
	}
	healthy := 0
	for _, row := range rows {
		if row.Healthy {
			healthy++
		}
	}
	t.Logf("%d compositions, %d rows (%d healthy), %d candidates re-extracted", len(byID), len(rows), healthy, checked)
}
