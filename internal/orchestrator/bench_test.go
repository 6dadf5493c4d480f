package orchestrator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// BenchmarkSettle1000Services times conflict analysis and resolution alone
// (no template parsing): 20 sources of 50 services drawn from 300 names and
// 500 host ports, so names and ports collide across sources.
func BenchmarkSettle1000Services(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var sources []source
	for t := range 20 {
		s := source{id: fmt.Sprintf("t%02d", t), priority: t % 4}
		names, ports := rng.Perm(300)[:50], rng.Perm(500)[:50]
		for j, n := range names {
			opts := []func(*domain.Service){port(8000+ports[j], 80+j)}
			if j > 0 && j%3 == 0 {
				opts = append(opts, needs(fmt.Sprintf("svc%03d", names[j-1])))
			}
			s.snap.Services = append(s.snap.Services, svc(fmt.Sprintf("svc%03d", n), fmt.Sprintf("img%d", n%5), opts...))
		}
		for e := range 10 {
			s.snap.Env = append(s.snap.Env, domain.EnvVar{Name: fmt.Sprintf("VAR_%02d", (t*3+e)%30), Value: fmt.Sprint(rng.IntN(3))})
		}
		sources = append(sources, s)
	}
	o, m := setup(b, domain.Priority, sources...)
	m.ResourceLimits = domain.Resources{CPUMillicores: 1e6, MemoryBytes: 1 << 42, DiskBytes: 1 << 42}
	for b.Loop() {
		p, err := o.Plan(context.Background(), m)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(p.Conflicts)), "conflicts")
	}
}
