// Package negotiation is the negotiation agent's API of the original
// concept, in Go:
//
//	resolve_conflict(request1, request2) -> allocation
//	optimize_allocation(allocation, performance_metrics) -> optimized_allocation
//
// Both run the same pipeline as a composition (package orchestrator): the
// conflicts between two requests are settled by the agent's resolver
// (AI_AGENT in the service: scored by the ONNX model, explained), and the
// result is fitted under the limits by the allocator. An allocation is a
// plan: the services with what each gets, the conflicts and how they were
// settled.
package negotiation

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/negotiate"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

// Agent answers the API with one resolver under one set of limits.
type Agent struct {
	resolver domain.Resolver
	limits   domain.Resources
}

// New returns an agent settling conflicts with r and allocating within
// limits (each must be positive).
func New(r domain.Resolver, limits domain.Resources) (*Agent, error) {
	if r == nil {
		return nil, fmt.Errorf("negotiation: no resolver")
	}
	if limits.CPUMillicores <= 0 || limits.MemoryBytes <= 0 || limits.DiskBytes <= 0 {
		return nil, domain.Errorf(domain.EINVALID, "limits: cpu, memory and disk must all be positive")
	}
	return &Agent{resolver: r, limits: limits}, nil
}

// Request is one party's request: who asks (Source: its type, id or host
// and path, priority, tags) and what it brings (Snapshot: the services with
// their ports and resources, and any variables, files and volumes).
type Request struct {
	Source   domain.Source
	Snapshot *domain.Snapshot
}

// ResolveConflict settles everything request1 and request2 contend for
// (names, ports, variables, files, volumes, and compute over the limits)
// and returns the allocation: a plan with each service's resources and
// every settled conflict. request1 is listed first. An allocation that
// cannot fit is returned with an EINFEASIBLE error.
func (a *Agent) ResolveConflict(ctx context.Context, request1, request2 Request) (*domain.Plan, error) {
	reqs := []Request{request1, request2}
	mem := memory{}
	m := &domain.Manifest{Name: "resolve_conflict", ConflictResolution: a.resolver.Strategy(), ResourceLimits: a.limits}
	for i, r := range reqs {
		field := fmt.Sprintf("request%d", i+1)
		if r.Snapshot == nil {
			return nil, domain.Errorf(domain.EINVALID, "%s: no snapshot: a request brings at least one service", field)
		}
		src := r.Source
		src.Index = i
		if err := checkSource(field, src); err != nil {
			return nil, err
		}
		if err := checkServices(field, r.Snapshot.Services); err != nil {
			return nil, err
		}
		if _, dup := mem[src.Ref()]; dup {
			return nil, domain.Errorf(domain.EINVALID, "%s: source %s is request1's too: two requests come from two sources", field, src.Ref())
		}
		snap := *r.Snapshot
		snap.Source = src
		mem[src.Ref()] = &snap
		m.Sources = append(m.Sources, src)
	}
	return a.orchestrator(mem, a.resolver).Plan(ctx, m)
}

// Metrics are a service's observed usage (from the monitor, or a live
// host's usage history).
type Metrics struct {
	CPUMillicoresP95 int64 // 95th percentile of its cpu use
	MemoryBytesPeak  int64 // the most memory it held
}

// Headroom is what an optimized request adds to observed use.
const Headroom = 1.2

// OptimizeAllocation re-allocates alloc after observing its services:
// a service with metrics asks for what it uses plus Headroom (95th
// percentile cpu, peak memory) instead of what it declared, and its memory
// minimum rises to its peak if below (squeezed under its real use, it
// would fail). Services without metrics keep their requests. The
// allocator then fits them under the limits again, valuing each service
// as alloc did (its weight). Names, ports, variables and files are kept:
// the conflicts were settled already.
func (a *Agent) OptimizeAllocation(ctx context.Context, alloc *domain.Plan, metrics map[string]Metrics) (*domain.Plan, error) {
	if alloc == nil {
		return nil, domain.Errorf(domain.EINVALID, "allocation: none given")
	}
	byName := map[string]domain.PlanService{}
	for _, s := range alloc.Services {
		byName[s.Name] = s
	}
	for name, mt := range metrics {
		if _, ok := byName[name]; !ok {
			return nil, domain.Errorf(domain.EINVALID, "performance_metrics: %q is not a service of the allocation (it has %s)", name, strings.Join(names(alloc), ", "))
		}
		if mt.CPUMillicoresP95 < 0 || mt.MemoryBytesPeak < 0 {
			return nil, domain.Errorf(domain.EINVALID, "performance_metrics: %s: usage cannot be negative", name)
		}
	}
	m := &domain.Manifest{Name: alloc.Name, ConflictResolution: a.resolver.Strategy(), ResourceLimits: a.limits}
	mem := memory{}
	for i, ps := range alloc.Sources {
		src, err := parseRef(ps.Ref)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "allocation: sources[%d]: %v", i, err)
		}
		src.Index, src.Priority, src.Tags = i, ps.Priority, slices.Clone(ps.Tags)
		m.Sources = append(m.Sources, src)
		mem[src.Ref()] = &domain.Snapshot{Source: src, Tags: slices.Clone(ps.Tags)}
	}
	weights := map[string]float64{}
	for _, s := range alloc.Services {
		snap := mem[s.Source]
		if snap == nil {
			return nil, domain.Errorf(domain.EINVALID, "allocation: service %s comes from %s, which is not among its sources", s.Name, s.Source)
		}
		svc := domain.Service{
			Name: s.Name, Image: s.Image, Ports: slices.Clone(s.Ports), DependsOn: slices.Clone(s.DependsOn),
			Volumes: slices.Clone(s.Volumes), Requested: s.Requested, Minimum: s.Minimum, Optional: s.Optional,
			Reads: slices.Clone(s.Reads), Runtime: domain.Digest([]byte(s.Source + "/" + domain.SourceRef(s.Name))),
		}
		if mt, ok := metrics[s.Name]; ok {
			svc.Minimum.MemoryBytes = max(svc.Minimum.MemoryBytes, mt.MemoryBytesPeak)
			svc.Requested.CPUMillicores = max(int64(math.Ceil(float64(mt.CPUMillicoresP95)*Headroom)), svc.Minimum.CPUMillicores)
			svc.Requested.MemoryBytes = max(int64(math.Ceil(float64(mt.MemoryBytesPeak)*Headroom)), svc.Minimum.MemoryBytes)
		}
		svc.Digest = svc.DefinitionDigest()
		snap.Services = append(snap.Services, svc)
		weights[string(s.Source)+"\x00"+s.Name] = s.Weight
	}
	for _, e := range alloc.Env {
		if snap := mem[e.Source]; snap != nil {
			v := domain.EnvVar{Name: e.Name, Digest: e.Digest}
			if e.Value != nil {
				v.Value = *e.Value
			}
			snap.Env = append(snap.Env, v)
		}
	}
	for _, f := range alloc.Files {
		if snap := mem[f.Source]; snap != nil {
			snap.Files = append(snap.Files, domain.File{Path: f.Path, Digest: f.Digest, Size: f.Size, Mode: 0o644})
		}
	}
	for _, v := range alloc.Volumes {
		if snap := mem[v.Source]; snap != nil {
			snap.Volumes = append(snap.Volumes, domain.Volume{Name: v.Name, Digest: domain.Digest([]byte(string(v.Source) + "/" + v.Name))})
		}
	}
	r := &kept{Resolver: a.resolver, weights: weights}
	return a.orchestrator(mem, r).Plan(ctx, m)
}

func (a *Agent) orchestrator(mem memory, r domain.Resolver) *orchestrator.Orchestrator {
	return orchestrator.New().
		WithSource(domain.TemplateSource, mem).
		WithSource(domain.LiveSource, mem).
		WithResolver(r)
}

// kept allocates with the weights an earlier allocation gave each service.
type kept struct {
	domain.Resolver
	weights map[string]float64
}

func (k *kept) ForPlan() (domain.Resolver, negotiate.Weigher) {
	return k.Resolver, func(members []composer.Member) []float64 {
		w := negotiate.ByPriority(members)
		for i, m := range members {
			if v, ok := k.weights[string(m.Source.Ref())+"\x00"+m.Name]; ok && v > 0 {
				w[i] = v
			}
		}
		return w
	}
}

// memory serves the requests' snapshots.
type memory map[domain.SourceRef]*domain.Snapshot

func (m memory) Retrieve(_ context.Context, src domain.Source) (*domain.Snapshot, error) {
	s, ok := m[src.Ref()]
	if !ok {
		return nil, domain.Errorf(domain.ENOTFOUND, "%s: no such request", src.Ref())
	}
	c := *s
	return &c, nil
}

func checkSource(field string, s domain.Source) error {
	switch s.Type {
	case domain.TemplateSource:
		if s.ID == "" {
			return domain.Errorf(domain.EINVALID, "%s.source.id: a template source needs its id", field)
		}
	case domain.LiveSource:
		if s.Host == "" || !strings.HasPrefix(s.Path, "/") {
			return domain.Errorf(domain.EINVALID, "%s.source: a live source needs a host and an absolute path", field)
		}
	default:
		return domain.Errorf(domain.EINVALID, "%s.source.type: %q: want template or live", field, s.Type)
	}
	return nil
}

func checkServices(field string, svcs []domain.Service) error {
	if len(svcs) == 0 {
		return domain.Errorf(domain.EINVALID, "%s.services: empty: a request brings at least one service", field)
	}
	for i, s := range svcs {
		at := fmt.Sprintf("%s.services[%d]", field, i)
		if s.Name == "" {
			return domain.Errorf(domain.EINVALID, "%s.name: empty", at)
		}
		for _, q := range []struct {
			what     string
			req, min int64
		}{
			{"cpu", s.Requested.CPUMillicores, s.Minimum.CPUMillicores},
			{"memory", s.Requested.MemoryBytes, s.Minimum.MemoryBytes},
			{"disk", s.Requested.DiskBytes, s.Minimum.DiskBytes},
		} {
			if q.req < 0 || q.min < 0 {
				return domain.Errorf(domain.EINVALID, "%s (%s): %s cannot be negative", at, s.Name, q.what)
			}
			if q.min > q.req {
				return domain.Errorf(domain.EINVALID, "%s (%s): minimum %s %d is above the request %d", at, s.Name, q.what, q.min, q.req)
			}
		}
	}
	return nil
}

// parseRef reads "template:ID" or "live:HOST:PATH".
func parseRef(ref domain.SourceRef) (domain.Source, error) {
	kind, rest, _ := strings.Cut(string(ref), ":")
	switch domain.SourceType(kind) {
	case domain.TemplateSource:
		if rest != "" {
			return domain.Source{Type: domain.TemplateSource, ID: rest}, nil
		}
	case domain.LiveSource:
		host, path, ok := strings.Cut(rest, ":")
		if ok && host != "" && strings.HasPrefix(path, "/") {
			return domain.Source{Type: domain.LiveSource, Host: host, Path: path}, nil
		}
	}
	return domain.Source{}, fmt.Errorf("%q is not a source ref (template:ID or live:HOST:PATH)", ref)
}

func names(p *domain.Plan) []string {
	var out []string
	for _, s := range p.Services {
		out = append(out, s.Name)
	}
	return out
}
