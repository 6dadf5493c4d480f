package negotiation_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/negotiation"
	"github.com/snapcompose/snapcompose/internal/plantest"
)

const gib = int64(1) << 30

func service(name, image string, port int, cpu, mem int64, needs ...string) domain.Service {
	s := domain.Service{
		Name: name, Image: image, Ports: []domain.Port{{Host: port, Container: port, Protocol: "tcp"}},
		DependsOn: append([]string{}, needs...), Volumes: []string{},
		Requested: domain.Resources{CPUMillicores: cpu, MemoryBytes: mem, DiskBytes: gib},
		Minimum:   domain.Resources{CPUMillicores: cpu / 2, MemoryBytes: mem / 2, DiskBytes: gib},
		Runtime:   domain.Digest([]byte(image)),
	}
	s.Digest = s.DefinitionDigest()
	return s
}

func requests() (negotiation.Request, negotiation.Request) {
	r1 := negotiation.Request{
		Source: domain.Source{Type: domain.TemplateSource, ID: "orders", Priority: 2, Tags: []string{"app"}},
		Snapshot: &domain.Snapshot{Services: []domain.Service{
			service("web", "nginx:1.27", 8080, 2000, 2*gib, "api"),
			service("api", "orders-api:1.4", 9090, 3000, 4*gib),
		}, Env: []domain.EnvVar{{Name: "LOG_LEVEL", Value: "info"}}},
	}
	r2 := negotiation.Request{
		Source: domain.Source{Type: domain.LiveSource, Host: "prod-1", Path: "/srv/app", Priority: 1, Tags: []string{"data"}},
		Snapshot: &domain.Snapshot{CapturedAt: time.Now().Add(-2 * time.Hour), Services: []domain.Service{
			service("web", "exe:/srv/app/bin/web", 8080, 1500, gib),
		}, Env: []domain.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}},
	}
	return r1, r2
}

func newAgent(t *testing.T, limits domain.Resources) *negotiation.Agent {
	t.Helper()
	model := agenttest.Model(t)
	a, err := negotiation.New(agent.NewLearned(model, agent.LearnedOptions{}), limits)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestResolveConflict: two requests contend for the name web, its port and
// LOG_LEVEL; the learned agent settles each, explained, and the allocation
// fits the limits.
func TestResolveConflict(t *testing.T) {
	a := newAgent(t, domain.Resources{CPUMillicores: 5000, MemoryBytes: 8 * gib, DiskBytes: 100 * gib})
	r1, r2 := requests()
	p, err := a.ResolveConflict(context.Background(), r1, r2)
	if err != nil {
		t.Fatal(err)
	}
	plantest.ValidatePlan(t, p)
	if p.Strategy != domain.AIAgent || !p.Feasible {
		t.Fatalf("strategy %s feasible %v", p.Strategy, p.Feasible)
	}
	keys := map[string]domain.Conflict{}
	for _, c := range p.Conflicts {
		keys[c.Key] = c
	}
	for _, k := range []string{"service:web", "env:LOG_LEVEL"} {
		c, ok := keys[k]
		if !ok {
			t.Fatalf("no conflict on %s in %v", k, p.Conflicts)
		}
		if c.Resolution.Score == nil || !strings.HasPrefix(c.Resolution.Detail, "AI_AGENT") {
			t.Errorf("%s settled without the model: %+v", k, c.Resolution)
		}
	}
	if p.Totals.CPUMillicores > 5000 || p.Totals.MemoryBytes > 8*gib {
		t.Errorf("allocation %+v over the limits", p.Totals)
	}
	// Every requested service is in the allocation or dropped with a reason.
	n := len(p.Services) + len(p.Dropped)
	for _, s := range p.Services {
		if s.SharedWith != nil {
			n += len(s.SharedWith)
		}
	}
	if n < 3 {
		t.Errorf("%d services accounted for, want the 3 requested: %+v, dropped %+v", n, p.Services, p.Dropped)
	}
}

func TestResolveConflictRefusesBadRequests(t *testing.T) {
	a := newAgent(t, domain.Resources{CPUMillicores: 5000, MemoryBytes: 8 * gib, DiskBytes: 100 * gib})
	r1, r2 := requests()
	bad := r2
	bad.Snapshot = &domain.Snapshot{Services: []domain.Service{service("web", "x", 80, 100, gib)}}
	bad.Snapshot.Services[0].Minimum.MemoryBytes = 4 * gib
	same := r1
	tests := []struct {
		name   string
		r1, r2 negotiation.Request
		want   string
	}{
		{"minimum above request", r1, bad, "request2.services[0] (web): minimum memory"},
		{"one source twice", r1, same, "request2: source template:orders is request1's too"},
		{"no snapshot", r1, negotiation.Request{Source: r2.Source}, "request2: no snapshot"},
		{"unknown type", negotiation.Request{Source: domain.Source{Type: "ftp"}, Snapshot: r1.Snapshot}, r2, `request1.source.type: "ftp"`},
	}
	for _, tt := range tests {
		_, err := a.ResolveConflict(context.Background(), tt.r1, tt.r2)
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want EINVALID mentioning %q", tt.name, err, tt.want)
		}
	}
}

// TestOptimizeAllocation: observed use replaces declared requests (with
// headroom), memory minimums rise to the peak, and the rest stays.
func TestOptimizeAllocation(t *testing.T) {
	a := newAgent(t, domain.Resources{CPUMillicores: 8000, MemoryBytes: 16 * gib, DiskBytes: 100 * gib})
	r1, r2 := requests()
	alloc, err := a.ResolveConflict(context.Background(), r1, r2)
	if err != nil {
		t.Fatal(err)
	}
	var api domain.PlanService
	for _, s := range alloc.Services {
		if s.Name == "api" {
			api = s
		}
	}
	if api.Name == "" {
		t.Fatalf("no api in %+v", alloc.Services)
	}
	opt, err := a.OptimizeAllocation(context.Background(), alloc, map[string]negotiation.Metrics{
		"api": {CPUMillicoresP95: 2000, MemoryBytesPeak: 3 * gib},
	})
	if err != nil {
		t.Fatal(err)
	}
	plantest.ValidatePlan(t, opt)
	if len(opt.Services) != len(alloc.Services) || len(opt.Env) != len(alloc.Env) {
		t.Fatalf("optimizing changed the composition: %d services, %d variables; had %d, %d", len(opt.Services), len(opt.Env), len(alloc.Services), len(alloc.Env))
	}
	for _, s := range opt.Services {
		var was domain.PlanService
		for _, w := range alloc.Services {
			if w.Name == s.Name {
				was = w
			}
		}
		if s.Name == "api" {
			if wantMem := int64(math.Ceil(3 * float64(gib) * negotiation.Headroom)); s.Requested.CPUMillicores != 2400 || s.Requested.MemoryBytes != wantMem {
				t.Errorf("api requests %+v, want 2400m and 3.6GiB (use plus 20%%)", s.Requested)
			}
			if s.Minimum.MemoryBytes != 3*gib {
				t.Errorf("api's memory minimum %d, want its 3GiB peak", s.Minimum.MemoryBytes)
			}
			if s.Allocation.CPUMillicores >= api.Allocation.CPUMillicores {
				t.Errorf("api still gets %dm cpu: it uses 2000m", s.Allocation.CPUMillicores)
			}
			continue
		}
		if s.Requested != was.Requested || s.Minimum != was.Minimum {
			t.Errorf("%s without metrics changed: %+v/%+v, was %+v/%+v", s.Name, s.Requested, s.Minimum, was.Requested, was.Minimum)
		}
	}
	_, err = a.OptimizeAllocation(context.Background(), alloc, map[string]negotiation.Metrics{"nope": {}})
	if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), `"nope" is not a service of the allocation`) {
		t.Errorf("metrics for an unknown service: %v", err)
	}
}
