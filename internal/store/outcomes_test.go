package store_test

import (
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

func TestRecordOutcome(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	id, rec := planned(t, st, newFixture(), false)
	svcA, svcB := rec.Plan.Services[0].Name, rec.Plan.Services[1].Name
	at := time.Date(2025, 3, 2, 8, 0, 0, 0, time.UTC)
	reports := []store.Outcome{
		{CompositionID: id, Verdict: store.VerdictDegraded, ReportedAt: at, Reporter: "monitor",
			Metrics: map[string]float64{"uptime_s": 600},
			Services: []store.ServiceOutcome{
				{Service: svcA, Healthy: true, LatencyMS: ptr(12.5), ErrorRate: ptr(0.0), Metrics: map[string]float64{"rps": 40}, ObservedAt: at.Add(-time.Minute)},
				{Service: svcB, Healthy: false, ErrorRate: ptr(0.4), ObservedAt: at.Add(-time.Minute)},
			}},
		{CompositionID: id, Verdict: store.VerdictHealthy, ReportedAt: at.Add(time.Hour), Reporter: "ci",
			Services: []store.ServiceOutcome{{Service: svcB, Healthy: true, ErrorRate: ptr(1.0), ObservedAt: at.Add(time.Hour)}}},
	}
	for i := range reports {
		oid, err := st.RecordOutcome(ctx, reports[i])
		if err != nil {
			t.Fatal(err)
		}
		reports[i].ID = oid
	}
	got, err := st.Outcomes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The store fills in what a report leaves empty.
	reports[1].Metrics = map[string]float64{}
	reports[0].Services[1].Metrics = map[string]float64{}
	reports[1].Services[0].Metrics = map[string]float64{}
	if mustJSON(t, got) != mustJSON(t, reports) {
		t.Errorf("outcomes:\ngot  %s\nwant %s", mustJSON(t, got), mustJSON(t, reports))
	}
	// Times come back in the local zone; compare them as instants.
	if !got[0].ReportedAt.Equal(at) {
		t.Errorf("reported at %v, want %v", got[0].ReportedAt, at)
	}

	none, err := st.Outcomes(ctx, newComposition(t, st, newFixture()))
	if err != nil || len(none) != 0 {
		t.Errorf("a composition without reports: got %v, %v", none, err)
	}
}

func TestRecordOutcomeIsAtomic(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	id, rec := planned(t, st, newFixture(), false)
	tests := []struct {
		name  string
		o     store.Outcome
		code  string
		words []string
	}{
		{name: "unknown verdict", o: store.Outcome{CompositionID: id, Verdict: "meh", Reporter: "x"}, code: domain.EINVALID, words: []string{"composition_outcomes_verdict_check"}},
		{name: "no reporter", o: store.Outcome{CompositionID: id, Verdict: store.VerdictHealthy}, code: domain.EINVALID, words: []string{"composition_outcomes_reporter_check"}},
		{name: "error rate above 1", o: store.Outcome{CompositionID: id, Verdict: store.VerdictHealthy, Reporter: "x",
			Services: []store.ServiceOutcome{{Service: rec.Plan.Services[0].Name, ErrorRate: ptr(1.5)}}}, code: domain.EINVALID, words: []string{"service_outcomes_error_rate_check"}},
		{name: "negative latency", o: store.Outcome{CompositionID: id, Verdict: store.VerdictHealthy, Reporter: "x",
			Services: []store.ServiceOutcome{{Service: rec.Plan.Services[0].Name, LatencyMS: ptr(-1.0)}}}, code: domain.EINVALID, words: []string{"service_outcomes_latency_ms_check"}},
		{name: "a service the plan does not have", o: store.Outcome{CompositionID: id, Verdict: store.VerdictHealthy, Reporter: "x",
			Services: []store.ServiceOutcome{{Service: "ghost"}}}, code: domain.ENOTFOUND, words: []string{"service_outcomes_service_fkey"}},
		{name: "unknown composition", o: store.Outcome{CompositionID: randomUUID(), Verdict: store.VerdictHealthy, Reporter: "x"}, code: domain.ENOTFOUND, words: []string{"composition_outcomes_composition_id_fkey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := st.RecordOutcome(ctx, tt.o)
			wantError(t, err, tt.code, tt.words...)
		})
	}
	t.Cleanup(func() {
		got, err := st.Outcomes(ctx, id)
		if err != nil || len(got) != 0 {
			t.Errorf("refused reports left %d outcomes (%v)", len(got), err)
		}
	})
}
