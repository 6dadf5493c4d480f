package orchestrator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// shape sizes a generated composition: sources of services drawn from a
// pool of names and host ports, and variables from a pool of names, so
// that they collide across sources.
type shape struct {
	sources, services, names, ports, vars, varNames int
}

// generated returns a composition of the shape, deterministically.
func generated(sh shape) []source {
	rng := rand.New(rand.NewPCG(3, 4))
	var sources []source
	for t := range sh.sources {
		s := source{id: fmt.Sprintf("t%02d", t), priority: t % 4}
		names, ports := rng.Perm(sh.names)[:sh.services], rng.Perm(sh.ports)[:sh.services]
		for j, n := range names {
			opts := []func(*domain.Service){port(8000+ports[j], 80+j)}
			if j > 0 && j%3 == 0 {
				opts = append(opts, needs(fmt.Sprintf("svc%03d", names[j-1])))
			}
			s.snap.Services = append(s.snap.Services, svc(fmt.Sprintf("svc%03d", n), fmt.Sprintf("img%d", n%5), opts...))
		}
		for e := range sh.vars {
			s.snap.Env = append(s.snap.Env, domain.EnvVar{Name: fmt.Sprintf("VAR_%03d", (t*7+e)%sh.varNames), Value: fmt.Sprint(rng.IntN(3))})
		}
		sources = append(sources, s)
	}
	return sources
}

// BenchmarkSettle1000Services times conflict analysis and resolution alone
// (no template parsing): 20 sources of 50 services drawn from 300 names and
// 500 host ports, so names and ports collide across sources.
func BenchmarkSettle1000Services(b *testing.B) {
	o, m := setup(b, domain.Priority, generated(shape{20, 50, 300, 500, 10, 30})...)
	m.ResourceLimits = domain.Resources{CPUMillicores: 1e6, MemoryBytes: 1 << 42, DiskBytes: 1 << 42}
	for b.Loop() {
		p, err := o.Plan(context.Background(), m)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(p.Conflicts)), "conflicts")
	}
}
