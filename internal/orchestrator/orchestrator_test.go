package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
	"github.com/snapcompose/snapcompose/internal/plantest"
)

// memorySource serves snapshots from memory: the logic above retrieval is
// what these tests are about. The real catalog has its own tests, and the
// CLI tests run the two together.
type memorySource map[string]*domain.Snapshot

func (m memorySource) Retrieve(_ context.Context, src domain.Source) (*domain.Snapshot, error) {
	s, ok := m[src.ID]
	if !ok {
		return nil, domain.Errorf(domain.ENOTFOUND, "template %q not found", src.ID)
	}
	out := *s
	out.Source = src
	return &out, nil
}

// svc builds a service; runtime defaults to its image, so two services with
// one image are interchangeable unless the test says otherwise.
func svc(name, image string, opts ...func(*domain.Service)) domain.Service {
	s := domain.Service{Name: name, Image: image, Runtime: image,
		Requested: domain.Resources{CPUMillicores: 500, MemoryBytes: 1 << 30, DiskBytes: 1e9},
		Minimum:   domain.Resources{CPUMillicores: 250, MemoryBytes: 512 << 20, DiskBytes: 1e9}}
	for _, o := range opts {
		o(&s)
	}
	s.Digest = fmt.Sprintf("%s|%s|%v|%v|%v|%v|%v", s.Runtime, s.Image, s.Ports, s.DependsOn, s.Volumes, s.Requested, s.Optional)
	return s
}

func port(host, container int) func(*domain.Service) {
	return func(s *domain.Service) {
		s.Ports = append(s.Ports, domain.Port{Host: host, Container: container, Protocol: "tcp"})
	}
}
func needs(names ...string) func(*domain.Service) {
	return func(s *domain.Service) { s.DependsOn = append(s.DependsOn, names...) }
}
func mounts(vols ...string) func(*domain.Service) {
	return func(s *domain.Service) { s.Volumes = append(s.Volumes, vols...) }
}
func runtime(r string) func(*domain.Service) { return func(s *domain.Service) { s.Runtime = r } }
func optional(s *domain.Service)             { s.Optional = true }
func cpu(m int64) func(*domain.Service) {
	return func(s *domain.Service) { s.Requested.CPUMillicores = m; s.Minimum.CPUMillicores = m / 2 }
}

type source struct {
	id       string
	priority int
	snap     domain.Snapshot
}

// setup returns an orchestrator over the sources and the manifest naming them.
func setup(t testing.TB, strategy domain.Strategy, sources ...source) (*orchestrator.Orchestrator, *domain.Manifest) {
	t.Helper()
	mem := memorySource{}
	m := &domain.Manifest{Name: t.Name(), ConflictResolution: strategy,
		ResourceLimits: domain.Resources{CPUMillicores: 64000, MemoryBytes: 256 << 30, DiskBytes: 1e13}}
	for i, s := range sources {
		src := domain.Source{Type: domain.TemplateSource, ID: s.id, Priority: s.priority, Index: i}
		m.Sources = append(m.Sources, src)
		snap := s.snap
		mem[s.id] = &snap
	}
	o := orchestrator.New().WithSource(domain.TemplateSource, mem)
	for _, st := range []domain.Strategy{domain.FirstWin, domain.LastWin, domain.Priority} {
		r, err := agent.New(st)
		if err != nil {
			t.Fatal(err)
		}
		o.WithResolver(r)
	}
	return o, m
}

func plan(t *testing.T, strategy domain.Strategy, sources ...source) *domain.Plan {
	t.Helper()
	o, m := setup(t, strategy, sources...)
	p, err := o.Plan(context.Background(), m)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	plantest.ValidatePlan(t, p)
	checkInvariants(t, p)
	return p
}

// checkInvariants holds for every plan: names and host ports are unique and
// every dependency is in the plan.
func checkInvariants(t *testing.T, p *domain.Plan) {
	t.Helper()
	names := map[string]bool{}
	ports := map[string]string{}
	for _, s := range p.Services {
		if names[s.Name] {
			t.Errorf("service %s appears twice", s.Name)
		}
		names[s.Name] = true
		for _, pt := range s.Ports {
			k := fmt.Sprintf("%s/%d", pt.Protocol, pt.Host)
			if other, ok := ports[k]; ok {
				t.Errorf("host port %s published by %s and %s", k, other, s.Name)
			}
			ports[k] = s.Name
		}
	}
	for _, s := range p.Services {
		for _, d := range s.DependsOn {
			if !names[d] {
				t.Errorf("service %s depends on %s, which is not in the plan", s.Name, d)
			}
		}
	}
}

func service(t *testing.T, p *domain.Plan, name string) domain.PlanService {
	t.Helper()
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s in plan; have %v", name, serviceNames(p))
	return domain.PlanService{}
}

func serviceNames(p *domain.Plan) []string {
	var out []string
	for _, s := range p.Services {
		out = append(out, s.Name+"@"+string(s.Source))
	}
	return out
}

func conflict(t *testing.T, p *domain.Plan, key string) domain.Conflict {
	t.Helper()
	for _, c := range p.Conflicts {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("no conflict %s in plan", key)
	return domain.Conflict{}
}

func winner(c domain.Conflict) string {
	if c.Resolution == nil || c.Resolution.Winner == nil {
		return ""
	}
	return string(*c.Resolution.Winner)
}

func TestServiceConflict(t *testing.T) {
	t.Parallel()
	a := source{id: "a", priority: 0, snap: domain.Snapshot{Services: []domain.Service{
		svc("db", "postgres:16"), svc("api", "api:1", needs("db")),
	}}}
	b := source{id: "b", priority: 5, snap: domain.Snapshot{Services: []domain.Service{
		svc("db", "mysql:8"), svc("report", "metabase:1", needs("db")),
	}}}
	tests := []struct {
		name       string
		strategy   domain.Strategy
		wantWinner string
		wantKeeps  string // source of the service still called db
		wantRename string // the loser's new name
		wantDepOf  string // the loser's dependent, which must follow the rename
	}{
		{"first win", domain.FirstWin, "template:a", "template:a", "db-b", "report"},
		{"last win", domain.LastWin, "template:b", "template:b", "db-a", "api"},
		{"priority", domain.Priority, "template:b", "template:b", "db-a", "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := plan(t, tt.strategy, a, b)
			c := conflict(t, p, "service:db")
			if got := winner(c); got != tt.wantWinner {
				t.Errorf("winner = %s, want %s", got, tt.wantWinner)
			}
			if c.Resolution.Action != domain.Rename {
				t.Errorf("action = %s, want rename (different images cannot share)", c.Resolution.Action)
			}
			if got := service(t, p, "db").Source; string(got) != tt.wantKeeps {
				t.Errorf("db comes from %s, want %s", got, tt.wantKeeps)
			}
			renamed := service(t, p, tt.wantRename)
			if renamed.RenamedFrom != "db" {
				t.Errorf("%s.renamed_from = %q, want db", tt.wantRename, renamed.RenamedFrom)
			}
			if got := service(t, p, tt.wantDepOf).DependsOn; !slices.Equal(got, []string{tt.wantRename}) {
				t.Errorf("%s depends on %v, want [%s]: dependents follow their service", tt.wantDepOf, got, tt.wantRename)
			}
		})
	}
}

func TestServiceShareAndIdentical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		bRedis       domain.Service
		wantConflict bool
	}{
		{"identical definitions merge without a conflict", svc("redis", "redis:7", port(6379, 6379)), false},
		{"same runtime, other ports: share", svc("redis", "redis:7", port(6380, 6379)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := source{id: "a", snap: domain.Snapshot{Services: []domain.Service{svc("redis", "redis:7", port(6379, 6379)), svc("web", "web:1", needs("redis"))}}}
			b := source{id: "b", snap: domain.Snapshot{Services: []domain.Service{tt.bRedis, svc("worker", "w:1", needs("redis"))}}}
			for _, st := range []domain.Strategy{domain.FirstWin, domain.LastWin} {
				p := plan(t, st, a, b)
				r := service(t, p, "redis")
				if len(p.Services) != 3 {
					t.Errorf("%s: services = %v, want one redis serving web and worker", st, serviceNames(p))
				}
				if got := service(t, p, "worker").DependsOn; !slices.Equal(got, []string{"redis"}) {
					t.Errorf("%s: worker depends on %v", st, got)
				}
				hasConflict := len(p.Conflicts) > 0
				if hasConflict != tt.wantConflict {
					t.Fatalf("%s: conflicts = %v, want conflict %v", st, p.Conflicts, tt.wantConflict)
				}
				if !tt.wantConflict {
					if r.Source != "template:a" || !slices.Equal(r.SharedWith, []domain.SourceRef{"template:b"}) {
						t.Errorf("%s: redis from %s shared with %v, want template:a shared with template:b", st, r.Source, r.SharedWith)
					}
					continue
				}
				c := conflict(t, p, "service:redis")
				if c.Resolution.Action != domain.Share {
					t.Errorf("%s: action = %s, want share", st, c.Resolution.Action)
				}
				want := map[domain.Strategy]domain.SourceRef{domain.FirstWin: "template:a", domain.LastWin: "template:b"}[st]
				if r.Source != want {
					t.Errorf("%s: shared redis comes from %s, want %s (its ports win too)", st, r.Source, want)
				}
			}
		})
	}
}

func TestOptionalLoserIsDroppedWithDependents(t *testing.T) {
	t.Parallel()
	a := source{id: "a", snap: domain.Snapshot{Services: []domain.Service{svc("cache", "memcached:1")}}}
	b := source{id: "b", snap: domain.Snapshot{Services: []domain.Service{
		svc("cache", "redis:7", optional), svc("sessions", "s:1", needs("cache")), svc("ui", "ui:1", needs("sessions")), svc("other", "o:1"),
	}}}
	p := plan(t, domain.FirstWin, a, b)
	c := conflict(t, p, "service:cache")
	if c.Resolution.Action != domain.Drop {
		t.Fatalf("action = %s, want drop for an optional loser", c.Resolution.Action)
	}
	var dropped []string
	for _, d := range p.Dropped {
		dropped = append(dropped, d.Name+"@"+string(d.Source))
		if d.Reason == "" {
			t.Errorf("dropped %s has no reason", d.Name)
		}
	}
	if want := []string{"cache@template:b", "sessions@template:b", "ui@template:b"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped = %v, want %v", dropped, want)
	}
	if !strings.Contains(p.Dropped[1].Reason, "depends on cache") {
		t.Errorf("dependent's reason = %q, want it to name the dropped dependency", p.Dropped[1].Reason)
	}
	service(t, p, "other")
}

func TestPortConflict(t *testing.T) {
	t.Parallel()
	a := source{id: "a", priority: 1, snap: domain.Snapshot{Services: []domain.Service{svc("web", "nginx:1", port(8080, 80), port(8081, 81))}}}
	b := source{id: "b", priority: 2, snap: domain.Snapshot{Services: []domain.Service{svc("grafana", "grafana:1", port(8080, 3000))}}}
	c := source{id: "c", priority: 2, snap: domain.Snapshot{Services: []domain.Service{svc("proxy", "envoy:1", port(8081, 8081), port(8082, 9901))}}}
	tests := []struct {
		name     string
		strategy domain.Strategy
		want     map[string][]int // service -> its host ports afterwards
	}{
		{"first win", domain.FirstWin, map[string][]int{"web": {8080, 8081}, "grafana": {8083}, "proxy": {8082, 8084}}},
		{"last win", domain.LastWin, map[string][]int{"web": {8083, 8084}, "grafana": {8080}, "proxy": {8081, 8082}}},
		{"priority ties go to the first listed", domain.Priority, map[string][]int{"web": {8083, 8084}, "grafana": {8080}, "proxy": {8081, 8082}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := plan(t, tt.strategy, a, b, c)
			for name, want := range tt.want {
				var got []int
				for _, pt := range service(t, p, name).Ports {
					got = append(got, pt.Host)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s host ports = %v, want %v", name, got, want)
				}
			}
			for _, key := range []string{"port:tcp/8080", "port:tcp/8081"} {
				if cf := conflict(t, p, key); cf.Resolution.Action != domain.Remap {
					t.Errorf("%s action = %s, want remap", key, cf.Resolution.Action)
				}
			}
		})
	}
}

func TestEnvAndFileConflicts(t *testing.T) {
	t.Parallel()
	mk := func(id string, prio int, level, pw, digest string) source {
		return source{id: id, priority: prio, snap: domain.Snapshot{
			Env:   []domain.EnvVar{{Name: "DB_PASSWORD", Value: pw}, {Name: "LOG_LEVEL", Value: level}},
			Files: []domain.File{{Path: "/etc/app.conf", Digest: digest, Size: 10}},
		}}
	}
	a, b, c := mk("a", 0, "debug", "hunter2", "sha256:aa"), mk("b", 9, "info", "correct horse", "sha256:bb"), mk("c", 9, "warn", "hunter2", "sha256:cc")
	tests := []struct {
		strategy domain.Strategy
		level    string
		file     string
	}{
		{domain.FirstWin, "debug", "sha256:aa"},
		{domain.LastWin, "warn", "sha256:cc"},
		{domain.Priority, "info", "sha256:bb"},
	}
	for _, tt := range tests {
		t.Run(string(tt.strategy), func(t *testing.T) {
			t.Parallel()
			p := plan(t, tt.strategy, a, b, c)
			for _, e := range p.Env {
				switch e.Name {
				case "LOG_LEVEL":
					if e.Value == nil || *e.Value != tt.level {
						t.Errorf("LOG_LEVEL = %v, want %s", e.Value, tt.level)
					}
				case "DB_PASSWORD":
					if e.Value != nil || !strings.HasPrefix(e.Digest, "sha256:") {
						t.Errorf("DB_PASSWORD carries value %v digest %q: a secret must carry only a digest", e.Value, e.Digest)
					}
				}
			}
			if got := p.Files[0].Digest; len(p.Files) != 1 || got != tt.file {
				t.Errorf("files = %+v, want one /etc/app.conf with %s", p.Files, tt.file)
			}
			if c := conflict(t, p, "env:LOG_LEVEL"); c.Resolution.Action != domain.Keep || len(c.Claimants) != 3 {
				t.Errorf("env conflict = %+v", c)
			}
		})
	}
}

func TestVolumeConflictIsolatesData(t *testing.T) {
	t.Parallel()
	a := source{id: "a", snap: domain.Snapshot{
		Services: []domain.Service{svc("db", "postgres:16", mounts("pgdata"))},
		Volumes:  []domain.Volume{{Name: "pgdata", Digest: "sha256:local"}}}}
	b := source{id: "b", snap: domain.Snapshot{
		Services: []domain.Service{svc("warehouse", "postgres:16", runtime("warehouse"), mounts("pgdata"))},
		Volumes:  []domain.Volume{{Name: "pgdata", Digest: "sha256:local"}}}}
	p := plan(t, domain.LastWin, a, b)
	c := conflict(t, p, "volume:pgdata")
	if c.Resolution.Action != domain.Rename || winner(c) != "template:b" {
		t.Fatalf("resolution = %+v, want rename won by template:b", c.Resolution)
	}
	if got := service(t, p, "db").Volumes; !slices.Equal(got, []string{"pgdata-a"}) {
		t.Errorf("db mounts %v, want [pgdata-a]", got)
	}
	if got := service(t, p, "warehouse").Volumes; !slices.Equal(got, []string{"pgdata"}) {
		t.Errorf("warehouse mounts %v, want [pgdata]", got)
	}
	if len(p.Volumes) != 2 {
		t.Errorf("volumes = %+v, want pgdata and pgdata-a", p.Volumes)
	}
}

func TestComputeOverLimitAllocated(t *testing.T) {
	t.Parallel()
	// 9 cores asked for, 8 allowed, 4.5 at minimums: the allocator fits it.
	a := source{id: "a", priority: 1, snap: domain.Snapshot{Services: []domain.Service{svc("big", "b:1", cpu(6000))}}}
	b := source{id: "b", snap: domain.Snapshot{Services: []domain.Service{svc("small", "s:1", cpu(3000))}}}
	o, m := setup(t, domain.FirstWin, a, b)
	m.ResourceLimits.CPUMillicores = 8000
	p, err := o.Plan(context.Background(), m)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	plantest.ValidatePlan(t, p)
	c := conflict(t, p, "cpu")
	if c.Resolution.Action != domain.Allocate || c.Resolution.Winner != nil || len(c.Claimants) != 2 {
		t.Errorf("cpu conflict = %+v", c)
	}
	big, small := service(t, p, "big").Allocation.CPUMillicores, service(t, p, "small").Allocation.CPUMillicores
	if big+small > 8000 || big < 3000 || small < 1500 {
		t.Fatalf("allocation big %d small %d: want within 8000 and at least the minimums", big, small)
	}
	if p.Totals.CPUMillicores != big+small || p.Requested.CPUMillicores != 9000 {
		t.Errorf("totals %+v requested %+v", p.Totals, p.Requested)
	}
	if p.Allocator == nil || !p.Allocator.Limits[0].Binding || p.Allocator.Limits[0].ShadowPrice <= 0 {
		t.Fatalf("allocator report = %+v, want the cpu limit binding at a positive shadow price", p.Allocator)
	}
	// The higher-priority source's service keeps more of what it asked for.
	if float64(big)/6000 <= float64(small)/3000 {
		t.Errorf("big (priority 1) got %d of 6000, small (priority 0) %d of 3000", big, small)
	}
	if !strings.Contains(c.Resolution.Detail, "the limit binds") {
		t.Errorf("cpu detail %q does not report the binding limit", c.Resolution.Detail)
	}
}

func TestComputeOverLimitAtMinimums(t *testing.T) {
	t.Parallel()
	a := source{id: "a", snap: domain.Snapshot{Services: []domain.Service{svc("big", "b:1", cpu(12000)), svc("small", "s:1", cpu(6000))}}}
	o, m := setup(t, domain.FirstWin, a)
	m.ResourceLimits.CPUMillicores = 8000
	p, err := o.Plan(context.Background(), m)
	if got := domain.ErrorCode(err); got != domain.EINFEASIBLE {
		t.Fatalf("error code = %q (%v), want %q", got, err, domain.EINFEASIBLE)
	}
	if p == nil || p.Feasible {
		t.Fatalf("want the infeasible plan returned with the error")
	}
	plantest.ValidatePlan(t, p)
	var de *domain.Error
	if !errors.As(err, &de) || len(de.Problems) != 1 {
		t.Fatalf("error %v: want one problem", err)
	}
	for _, want := range []string{"Insufficient cpu", "need 9 cores at their minimums", "limit is 8 cores", "1 core short", "big 6 cores (template:a)", "small 3 cores (template:a)"} {
		if !strings.Contains(de.Problems[0].Where+" "+de.Problems[0].Message, want) {
			t.Errorf("problem %+v does not say %q", de.Problems[0], want)
		}
	}
	if service(t, p, "big").Allocation.CPUMillicores != 12000 {
		t.Errorf("an infeasible plan shows what was asked for")
	}
}

func TestGraphErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sources []source
		want    string
	}{
		{"cycle across sources", []source{
			{id: "a", snap: domain.Snapshot{Services: []domain.Service{svc("x", "x:1", needs("y"))}}},
			{id: "b", snap: domain.Snapshot{Services: []domain.Service{svc("y", "y:1", needs("x"))}}},
		}, "dependency cycle: x -> y -> x"},
		{"dangling dependency", []source{
			{id: "a", snap: domain.Snapshot{Services: []domain.Service{svc("x", "x:1", needs("ghost"))}}},
		}, "depends on ghost, which is not in the composition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, m := setup(t, domain.FirstWin, tt.sources...)
			_, err := o.Plan(context.Background(), m)
			if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want EINVALID containing %q", err, tt.want)
			}
		})
	}
}

func TestRetrievalErrorsKeepTheirCode(t *testing.T) {
	t.Parallel()
	o, m := setup(t, domain.FirstWin, source{id: "a"})
	m.Sources = append(m.Sources, domain.Source{Type: domain.TemplateSource, ID: "missing", Index: 1})
	_, err := o.Plan(context.Background(), m)
	if domain.ErrorCode(err) != domain.ENOTFOUND || !strings.Contains(err.Error(), "template:missing") {
		t.Errorf("err = %v, want ENOTFOUND naming template:missing", err)
	}
	m.ConflictResolution = domain.AIAgent
	if _, err := o.Plan(context.Background(), m); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("AI_AGENT without a model: err = %v, want EUNAVAILABLE", err)
	}
}

// merging chooses a merge where there is a usable one, and otherwise the
// first usable candidate.
type merging struct{ candidates map[string][]domain.Candidate }

func (merging) Strategy() domain.Strategy { return domain.AIAgent }

func (m merging) Resolve(_ context.Context, _ *domain.Manifest, ds []domain.Decision) ([]domain.Choice, error) {
	out := make([]domain.Choice, len(ds))
	for i, d := range ds {
		m.candidates[d.Conflict.Key] = d.Candidates
		out[i].Candidate = -1
		for j, c := range d.Candidates {
			if c.Rejected == "" && (out[i].Candidate < 0 || c.Resolution.Action == domain.Merge) {
				out[i].Candidate = j
			}
		}
	}
	return out, nil
}

// TestMergeListVariables: variables that hold lists can be merged, each
// item once in claimant order; a secret list cannot (its values are
// digests); a single value is never offered a merge.
func TestMergeListVariables(t *testing.T) {
	t.Parallel()
	mk := func(id, flags, path, level string) source {
		return source{id: id, snap: domain.Snapshot{Env: []domain.EnvVar{
			{Name: "FEATURE_FLAGS", Value: flags}, {Name: "PYTHONPATH", Value: path}, {Name: "LOG_LEVEL", Value: level},
			{Name: "API_TOKEN_LIST", Digest: domain.Digest([]byte(id))},
		}}}
	}
	o, m := setup(t, domain.AIAgent, mk("a", "search,cart", "/opt/a:/opt/lib", "info"), mk("b", "cart, checkout", "/opt/lib:/opt/b", "debug"))
	seen := merging{candidates: map[string][]domain.Candidate{}}
	o.WithResolver(seen)
	p, err := o.Plan(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	plantest.ValidatePlan(t, p)
	want := map[string]string{"FEATURE_FLAGS": "search,cart,checkout", "PYTHONPATH": "/opt/a:/opt/lib:/opt/b", "LOG_LEVEL": "info"}
	for _, e := range p.Env {
		if w, ok := want[e.Name]; ok && (e.Value == nil || *e.Value != w) {
			t.Errorf("%s = %v, want %q", e.Name, e.Value, w)
		}
		if e.Name == "API_TOKEN_LIST" && e.Value != nil {
			t.Errorf("the secret list carries a value: %q", *e.Value)
		}
	}
	if n := len(p.Env); n != 4 {
		t.Errorf("%d variables in the plan, want 4: %+v", n, p.Env)
	}
	hasMerge := func(key string) (domain.Candidate, bool) {
		for _, c := range seen.candidates[key] {
			if c.Resolution.Action == domain.Merge {
				return c, true
			}
		}
		return domain.Candidate{}, false
	}
	if _, ok := hasMerge("env:LOG_LEVEL"); ok {
		t.Error("LOG_LEVEL, a single value, was offered a merge")
	}
	if c, ok := hasMerge("env:API_TOKEN_LIST"); !ok || !strings.Contains(c.Rejected, "secret") {
		t.Errorf("API_TOKEN_LIST merge = %+v, want one rejected as a secret", c)
	}
	if c := conflict(t, p, "env:FEATURE_FLAGS"); c.Resolution.Action != domain.Merge {
		t.Errorf("FEATURE_FLAGS settled by %s, want merge", c.Resolution.Action)
	}
}
