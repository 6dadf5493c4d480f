package orchestrator_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/plantest"
	"github.com/snapcompose/snapcompose/internal/planview"
)

// randomSources builds 2-4 sources that collide on names, ports, volumes,
// variables and files, drawn from small pools so collisions are common.
func randomSources(rng *rand.Rand) []source {
	names := []string{"db", "web", "api", "cache", "worker", "ui"}
	images := []string{"postgres:16", "nginx:1", "redis:7", "app:1"}
	hostPorts := []int{80, 443, 5432, 6379, 8080}
	n := 2 + rng.IntN(3)
	out := make([]source, n)
	for i := range out {
		s := source{id: fmt.Sprintf("t%d", i), priority: rng.IntN(3)}
		perm := rng.Perm(len(names))[:1+rng.IntN(len(names))]
		published := map[int]bool{} // a catalog refuses one host port twice in a template
		for j, k := range perm {
			var opts []func(*domain.Service)
			if hp := hostPorts[rng.IntN(len(hostPorts))]; rng.IntN(2) == 0 && !published[hp] {
				published[hp] = true
				opts = append(opts, port(hp, 1000+j))
			}
			if j > 0 && rng.IntN(2) == 0 {
				opts = append(opts, needs(names[perm[rng.IntN(j)]]))
			}
			if rng.IntN(3) == 0 {
				opts = append(opts, mounts("data"))
			}
			if rng.IntN(4) == 0 {
				opts = append(opts, optional)
			}
			image := images[rng.IntN(len(images))]
			opts = append(opts, runtime(image+fmt.Sprint(rng.IntN(2))))
			s.snap.Services = append(s.snap.Services, svc(names[k], image, opts...))
		}
		if rng.IntN(2) == 0 {
			s.snap.Volumes = []domain.Volume{{Name: "data", Digest: "sha256:v"}}
		}
		for _, e := range []string{"LOG_LEVEL", "API_TOKEN", "REGION"} {
			if rng.IntN(2) == 0 {
				s.snap.Env = append(s.snap.Env, domain.EnvVar{Name: e, Value: fmt.Sprint(rng.IntN(3))})
			}
		}
		if rng.IntN(2) == 0 {
			s.snap.Env = append(s.snap.Env, domain.EnvVar{Name: "FEATURE_FLAGS", Value: fmt.Sprintf("f%d,f%d", rng.IntN(3), 3+rng.IntN(3))})
		}
		if rng.IntN(2) == 0 {
			s.snap.Files = []domain.File{{Path: "/etc/app.conf", Digest: fmt.Sprintf("sha256:%d", rng.IntN(3)), Size: 1}}
		}
		out[i] = s
	}
	// Mount only declared volumes, as a catalog guarantees.
	for i := range out {
		if len(out[i].snap.Volumes) == 0 {
			for j := range out[i].snap.Services {
				out[i].snap.Services[j].Volumes = nil
			}
		}
	}
	return out
}

// TestStrategiesHoldOnRandomCompositions checks, over many random
// compositions, that every strategy names the winner its name promises for
// every kind of conflict, that nothing is lost silently, and that plans are
// valid and deterministic.
func TestStrategiesHoldOnRandomCompositions(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	kinds := map[domain.ClaimKind]int{}
	for i := range 300 {
		sources := randomSources(rng)
		for _, st := range []domain.Strategy{domain.FirstWin, domain.LastWin, domain.Priority} {
			name := fmt.Sprintf("%d/%s", i, st)
			o, m := setup(t, st, sources...)
			p, err := o.Plan(context.Background(), m)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			plantest.ValidatePlan(t, p)
			checkInvariants(t, p)
			byRef := map[domain.SourceRef]domain.Source{}
			for _, s := range m.Sources {
				byRef[s.Ref()] = s
			}
			for _, c := range p.Conflicts {
				kinds[c.Kind]++
				want := expectedWinner(st, c.Claimants, byRef)
				if got := winner(c); got != string(want) {
					t.Errorf("%s: %s won by %s, want %s", name, c.Key, got, want)
				}
			}
			checkNothingLost(t, name, sources, p)
			var b1, b2 bytes.Buffer
			_ = planview.WriteJSON(&b1, p)
			p2, _ := o.Plan(context.Background(), m)
			_ = planview.WriteJSON(&b2, p2)
			if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
				t.Fatalf("%s: two runs gave different plans", name)
			}
		}
	}
	for _, k := range []domain.ClaimKind{domain.ServiceClaim, domain.PortClaim, domain.EnvClaim, domain.FileClaim, domain.VolumeClaim} {
		if kinds[k] == 0 {
			t.Errorf("no %s conflict was generated; the generator needs more collisions", k)
		}
	}
	t.Logf("conflicts checked by kind: %v", kinds)
}

func expectedWinner(st domain.Strategy, claimants []domain.Claimant, byRef map[domain.SourceRef]domain.Source) domain.SourceRef {
	var best *domain.Source
	for _, cl := range claimants {
		s := byRef[cl.Source]
		switch {
		case best == nil,
			st == domain.FirstWin && s.Index < best.Index,
			st == domain.LastWin && s.Index > best.Index,
			st == domain.Priority && (s.Priority > best.Priority || s.Priority == best.Priority && s.Index < best.Index):
			best = &s
		}
	}
	return best.Ref()
}

// checkNothingLost: every service of every source is in the plan (under its
// name or renamed), served by a shared instance, or dropped with a reason.
func checkNothingLost(t *testing.T, name string, sources []source, p *domain.Plan) {
	t.Helper()
	accounted := map[string]bool{}
	for _, s := range p.Services {
		orig := s.Name
		if s.RenamedFrom != "" {
			orig = s.RenamedFrom
		}
		accounted[string(s.Source)+"/"+orig] = true
		for _, r := range s.SharedWith {
			accounted[string(r)+"/"+orig] = true
		}
	}
	for _, d := range p.Dropped {
		if d.Reason == "" {
			t.Errorf("%s: %s dropped without a reason", name, d.Name)
		}
		accounted[string(d.Source)+"/"+d.Name] = true
	}
	for _, src := range sources {
		for _, s := range src.snap.Services {
			if key := "template:" + src.id + "/" + s.Name; !accounted[key] {
				t.Errorf("%s: %s vanished from the plan without a trace", name, key)
			}
		}
	}
}
