package negotiate_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/negotiate"
	"github.com/snapcompose/snapcompose/internal/plantest"
)

// service needs cpu millicores (minimum = requested) and nothing else of note.
func service(name string, cpu int64, optional bool, needs ...string) domain.Service {
	r := domain.Resources{CPUMillicores: cpu, MemoryBytes: 64 << 20, DiskBytes: 1 << 20}
	return domain.Service{Name: name, Image: name + ":1", Runtime: name, Digest: name,
		Requested: r, Minimum: r, Optional: optional, DependsOn: needs}
}

type src struct {
	typ      domain.SourceType
	id       string
	priority int
	services []domain.Service
}

func compose(t *testing.T, cpuLimit int64, sources ...src) *composer.Composition {
	t.Helper()
	m := &domain.Manifest{Name: t.Name(), ConflictResolution: domain.FirstWin,
		ResourceLimits: domain.Resources{CPUMillicores: cpuLimit, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}}
	var snaps []*domain.Snapshot
	for i, s := range sources {
		source := domain.Source{Type: s.typ, ID: s.id, Priority: s.priority, Index: i}
		if s.typ == domain.LiveSource {
			source = domain.Source{Type: s.typ, Host: s.id, Path: "/srv", Priority: s.priority, Index: i}
		}
		m.Sources = append(m.Sources, source)
		snaps = append(snaps, &domain.Snapshot{Source: source, Services: s.services})
	}
	c, err := composer.New(m, snaps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fit(t *testing.T, c *composer.Composition, cpuLimit int64, opt negotiate.Options) (*domain.Plan, error) {
	t.Helper()
	p, err := negotiate.Fit(context.Background(), c, domain.Resources{CPUMillicores: cpuLimit, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}, opt)
	if p != nil {
		plantest.ValidatePlan(t, p)
		var total int64
		for _, s := range p.Services {
			total += s.Allocation.CPUMillicores
		}
		if p.Feasible && total > cpuLimit {
			t.Errorf("cpu allocated %d > limit %d", total, cpuLimit)
		}
	}
	return p, err
}

func droppedNames(p *domain.Plan) []string {
	var names []string
	for _, d := range p.Dropped {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

func TestDropOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		limit    int64
		sources  []src
		want     []string // dropped, sorted
		feasible bool
	}{
		{
			name:  "lowest value first, and only as many as needed",
			limit: 3000,
			sources: []src{
				{domain.TemplateSource, "low", 0, []domain.Service{service("a", 1000, false), service("cheap", 1000, true)}},
				{domain.TemplateSource, "high", 9, []domain.Service{service("dear", 1000, true), service("b", 1000, false)}},
			},
			want: []string{"cheap"}, feasible: true,
		},
		{
			name:  "an optional service a required one needs stays",
			limit: 2000,
			sources: []src{
				{domain.TemplateSource, "low", 0, []domain.Service{service("cache", 1000, true), service("api", 1000, false, "cache")}},
				{domain.TemplateSource, "high", 9, []domain.Service{service("extra", 1000, true)}},
			},
			want: []string{"extra"}, feasible: true,
		},
		{
			name:  "a dependent goes before what it needs; what is needed goes with its dependents",
			limit: 2500,
			sources: []src{
				// Weights: priority 0 ranks 1, priority 1 ranks 2, halved
				// for optional: zbase 0.5, viewer 0.5, lone 1. viewer alone
				// is worth least (0.5; zbase with viewer is worth 1), then
				// zbase (0.5) before lone (1). Names sort the other way.
				{domain.TemplateSource, "low", 0, []domain.Service{service("zbase", 1000, true), service("viewer", 1000, true, "zbase")}},
				{domain.TemplateSource, "high", 1, []domain.Service{service("lone", 1500, true), service("core", 1000, false)}},
			},
			want: []string{"viewer", "zbase"}, feasible: true,
		},
		{
			name:  "between equal values, the one that frees more goes first",
			limit: 2000,
			sources: []src{
				{domain.TemplateSource, "t", 0, []domain.Service{service("asmall", 500, true), service("big", 1500, true), service("core", 1000, false)}},
			},
			want: []string{"big"}, feasible: true,
		},
		{
			name:  "a service that does not use the short resource is not dropped",
			limit: 1000,
			sources: []src{
				{domain.TemplateSource, "t", 0, []domain.Service{service("idle", 0, true), service("busy", 2000, false)}},
			},
			want: nil, feasible: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := compose(t, tt.limit, tt.sources...)
			p, err := fit(t, c, tt.limit, negotiate.Options{})
			if tt.feasible != (err == nil) {
				t.Fatalf("Fit error %v, want feasible %v", err, tt.feasible)
			}
			if got := droppedNames(p); !slices.Equal(got, tt.want) {
				t.Errorf("dropped %v, want %v; %+v", got, tt.want, p.Dropped)
			}
			for _, d := range p.Dropped {
				if d.Reason == "" {
					t.Errorf("%s dropped without a reason", d.Name)
				}
			}
			if !tt.feasible && domain.ErrorCode(err) != domain.EINFEASIBLE {
				t.Errorf("error code %q, want %q", domain.ErrorCode(err), domain.EINFEASIBLE)
			}
		})
	}
}

// negotiator answers from a table, or fails.
type negotiator struct {
	offers map[string]domain.Resources
	err    error
	asked  [][]string
}

func (n *negotiator) Concede(_ context.Context, s domain.Source, services []string) ([]domain.Offer, error) {
	n.asked = append(n.asked, services)
	if n.err != nil {
		return nil, n.err
	}
	var out []domain.Offer
	for _, name := range services {
		if r, ok := n.offers[name]; ok {
			out = append(out, domain.Offer{Service: name, Minimum: r, Basis: "usage says so"})
		}
	}
	return out, nil
}

func TestConcessionsBeforeDrops(t *testing.T) {
	t.Parallel()
	live := src{domain.LiveSource, "prod", 5, []domain.Service{service("api", 2000, false), service("batch", 1000, false)}}
	tmpl := src{domain.TemplateSource, "t", 0, []domain.Service{service("db", 1000, false), service("extra", 500, true)}}
	n := &negotiator{offers: map[string]domain.Resources{"api": {CPUMillicores: 800, MemoryBytes: 1 << 40, DiskBytes: 1 << 40}}}
	c := compose(t, 3500, live, tmpl)
	p, err := fit(t, c, 3500, negotiate.Options{Negotiators: map[domain.SourceType]domain.Negotiator{domain.LiveSource: n}})
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	if len(n.asked) != 1 || !slices.Equal(n.asked[0], []string{"api", "batch"}) {
		t.Errorf("asked %v, want the live source once for api and batch (templates are firm)", n.asked)
	}
	if len(p.Concessions) != 2 || !p.Concessions[0].Granted || p.Concessions[0].To.CPUMillicores != 800 ||
		p.Concessions[0].To.MemoryBytes != 64<<20 || p.Concessions[1].Granted {
		t.Errorf("concessions = %+v: want api to 800m (memory never raised), batch without an offer", p.Concessions)
	}
	if len(p.Dropped) != 0 {
		t.Errorf("dropped %+v: the concession was enough", p.Dropped)
	}
}

func TestNegotiatorFailureIsRecorded(t *testing.T) {
	t.Parallel()
	live := src{domain.LiveSource, "prod", 5, []domain.Service{service("api", 2000, false)}}
	n := &negotiator{err: errors.New("agent unreachable")}
	c := compose(t, 1000, live)
	p, err := fit(t, c, 1000, negotiate.Options{Negotiators: map[domain.SourceType]domain.Negotiator{domain.LiveSource: n}})
	if domain.ErrorCode(err) != domain.EINFEASIBLE {
		t.Fatalf("error %v, want EINFEASIBLE", err)
	}
	if len(p.Concessions) != 1 || p.Concessions[0].Granted || !strings.Contains(p.Concessions[0].Reason, "agent unreachable") {
		t.Errorf("concessions = %+v, want the failure recorded", p.Concessions)
	}
	if !strings.Contains(err.Error(), "1 concession asked (0 granted)") {
		t.Errorf("error %q does not say what was asked", err)
	}
}

func TestWeights(t *testing.T) {
	t.Parallel()
	two := []src{{domain.TemplateSource, "t", 0, []domain.Service{
		{Name: "a", Image: "a", Runtime: "a", Digest: "a", Requested: domain.Resources{CPUMillicores: 2000}, Minimum: domain.Resources{}},
		{Name: "b", Image: "b", Runtime: "b", Digest: "b", Requested: domain.Resources{CPUMillicores: 2000}, Minimum: domain.Resources{}},
	}}}
	t.Run("a heavier service gets more", func(t *testing.T) {
		t.Parallel()
		c := compose(t, 2000, two...)
		weigh := func(ms []composer.Member) []float64 {
			w := make([]float64, len(ms))
			for i, m := range ms {
				w[i] = map[string]float64{"a": 4, "b": 1}[m.Name]
			}
			return w
		}
		p, err := fit(t, c, 2000, negotiate.Options{Weigh: weigh})
		if err != nil {
			t.Fatal(err)
		}
		a, b := p.Services[0], p.Services[1]
		if a.Allocation.CPUMillicores <= b.Allocation.CPUMillicores || a.Weight != 4 || b.Weight != 1 {
			t.Errorf("a %+v, b %+v: want a (weight 4) to get more", a, b)
		}
		if !p.Allocator.Limits[0].Binding || p.Allocator.Limits[0].ShadowPrice <= 0 {
			t.Errorf("cpu limit report %+v, want binding at a positive price", p.Allocator.Limits[0])
		}
	})
	t.Run("a weight that is not positive is refused", func(t *testing.T) {
		t.Parallel()
		c := compose(t, 2000, two...)
		_, err := negotiate.Fit(context.Background(), c, domain.Resources{CPUMillicores: 2000, MemoryBytes: 1, DiskBytes: 1},
			negotiate.Options{Weigh: func(ms []composer.Member) []float64 { return make([]float64, len(ms)) }})
		if err == nil || !strings.Contains(err.Error(), "weight") {
			t.Errorf("error %v, want one about the weight", err)
		}
	})
}

func TestMemoryPerCoreKept(t *testing.T) {
	t.Parallel()
	// Memory is short; cpu is not. A service never gets cores without the
	// memory its declared ratio needs.
	s := domain.Service{Name: "app", Image: "app", Runtime: "app", Digest: "app",
		Requested: domain.Resources{CPUMillicores: 4000, MemoryBytes: 8 << 30},
		Minimum:   domain.Resources{CPUMillicores: 1000, MemoryBytes: 2 << 30}}
	c := compose(t, 8000, src{domain.TemplateSource, "t", 0, []domain.Service{s}})
	p, err := negotiate.Fit(context.Background(), c, domain.Resources{CPUMillicores: 8000, MemoryBytes: 4 << 30, DiskBytes: 1}, negotiate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Services[0].Allocation
	if got.MemoryBytes != 4<<30 || got.CPUMillicores != 2000 {
		t.Errorf("allocation %+v: want 4GiB and the 2 cores it can use at 2GiB per core", got)
	}
}
