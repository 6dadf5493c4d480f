package store_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// bigFixture is a composition of 4 templates of 34 services each, drawn
// from 60 names and 90 host ports, so that names, ports and variables
// collide: about 100 conflicts.
func bigFixture() fixture {
	rng := rand.New(rand.NewPCG(1, 2))
	var sources []domain.Source
	var snaps []*domain.Snapshot
	for s := range 4 {
		src := domain.Source{Type: domain.TemplateSource, ID: fmt.Sprintf("t%d", s), Priority: s % 3, Index: s}
		sources = append(sources, src)
		snap := &domain.Snapshot{Source: src}
		names, ports := rng.Perm(60)[:34], rng.Perm(90)[:34]
		for j, n := range names {
			snap.Services = append(snap.Services, service(fmt.Sprintf("svc%02d", n), fmt.Sprintf("img%d:%d", n, s%2), 100, publish(8000+ports[j], 80)))
		}
		for e := range 8 {
			snap.Env = append(snap.Env, domain.EnvVar{Name: fmt.Sprintf("VAR_%02d", (s*3+e)%16), Value: fmt.Sprint(s)})
		}
		snaps = append(snaps, snap)
	}
	m := &domain.Manifest{Name: "big", Sources: sources, ConflictResolution: domain.AIAgent,
		ResourceLimits: domain.Resources{CPUMillicores: 1e6, MemoryBytes: 1 << 42, DiskBytes: 1 << 42}}
	return fixture{manifest: m, raw: []byte(`{"name":"big"}`), snaps: snaps}
}

// BenchmarkRecordPlan times recording one composition's plan with about
// 100 conflicts, every candidate scored and carrying features.
func BenchmarkRecordPlan(b *testing.B) {
	st, ctx := setup(b)
	f := bigFixture()
	rec := record(b, f.manifest, f.snaps, true)
	candidates := 0
	for _, d := range rec.Decisions {
		candidates += len(d.Candidates)
	}
	for b.Loop() {
		b.StopTimer()
		id := newComposition(b, st, f)
		b.StartTimer()
		if err := st.RecordPlan(ctx, id, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rec.Plan.Conflicts)), "conflicts")
	b.ReportMetric(float64(candidates), "candidates")
	b.ReportMetric(float64(len(rec.Claims)), "claims")
}
