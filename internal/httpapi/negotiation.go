package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/negotiation"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// The concept's agent API over HTTP (package negotiation):
//
//	POST /v1/conflicts/resolve     resolve_conflict(request1, request2) -> allocation
//	POST /v1/allocations/optimize  optimize_allocation(allocation, performance_metrics) -> optimized allocation
//
// An allocation is a plan (the plan contract).

// resources is a cpu/memory/disk triple as the manifest writes it.
type resources struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
	Disk   string `json:"disk"`
}

type port struct {
	Host      int    `json:"host"`
	Container int    `json:"container"`
	Protocol  string `json:"protocol"`
}

type service struct {
	Name             string     `json:"name"`
	Image            string     `json:"image"`
	Ports            []port     `json:"ports"`
	DependsOn        []string   `json:"depends_on"`
	Requested        resources  `json:"requested"`
	Minimum          *resources `json:"minimum"`
	Optional         bool       `json:"optional"`
	LatencySensitive bool       `json:"latency_sensitive"`
}

type envVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type source struct {
	Type     string   `json:"type"`
	ID       string   `json:"id"`
	Host     string   `json:"host"`
	Path     string   `json:"path"`
	Priority int      `json:"priority"`
	Tags     []string `json:"tags"`
}

type request struct {
	Source   source    `json:"source"`
	Services []service `json:"services"`
	Env      []envVar  `json:"env"`
}

type resolveBody struct {
	Request1           *request  `json:"request1"`
	Request2           *request  `json:"request2"`
	Limits             resources `json:"limits"`
	ConflictResolution string    `json:"conflict_resolution"`
}

type usageMetrics struct {
	CPUP95     string `json:"cpu_p95"`
	MemoryPeak string `json:"memory_peak"`
}

type optimizeBody struct {
	Allocation         *domain.Plan            `json:"allocation"`
	PerformanceMetrics map[string]usageMetrics `json:"performance_metrics"`
	Limits             *resources              `json:"limits"`
	ConflictResolution string                  `json:"conflict_resolution"`
}

func (s *Server) resolveConflict(w http.ResponseWriter, r *http.Request) {
	var b resolveBody
	if err := decodeBody(r, &b); err != nil {
		s.writeError(w, r, err)
		return
	}
	var probs problems
	limits := probs.resources("limits", b.Limits, true)
	r1 := probs.request("request1", b.Request1)
	r2 := probs.request("request2", b.Request2)
	if err := probs.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.negotiator(b.ConflictResolution, limits)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	plan, err := a.ResolveConflict(r.Context(), r1, r2)
	s.writeAllocation(w, r, plan, err)
}

func (s *Server) optimizeAllocation(w http.ResponseWriter, r *http.Request) {
	var b optimizeBody
	if err := decodeBody(r, &b); err != nil {
		s.writeError(w, r, err)
		return
	}
	var probs problems
	if b.Allocation == nil {
		probs.add("allocation", "required: the allocation (a plan) to optimize")
	}
	var limits domain.Resources
	switch {
	case b.Limits != nil:
		limits = probs.resources("limits", *b.Limits, true)
	case b.Allocation != nil:
		limits = b.Allocation.Limits
	}
	ms := map[string]negotiation.Metrics{}
	for name, m := range b.PerformanceMetrics {
		where := "performance_metrics." + name
		var mt negotiation.Metrics
		if m.CPUP95 != "" {
			mt.CPUMillicoresP95 = probs.cpu(where+".cpu_p95", m.CPUP95)
		}
		if m.MemoryPeak != "" {
			mt.MemoryBytesPeak = probs.bytes(where+".memory_peak", m.MemoryPeak)
		}
		ms[name] = mt
	}
	if err := probs.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	strategy := b.ConflictResolution
	if strategy == "" {
		strategy = string(b.Allocation.Strategy)
	}
	a, err := s.negotiator(strategy, limits)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	plan, err := a.OptimizeAllocation(r.Context(), b.Allocation, ms)
	s.writeAllocation(w, r, plan, err)
}

// negotiator is the agent for a strategy ("" is AI_AGENT) and limits.
func (s *Server) negotiator(strategy string, limits domain.Resources) (*negotiation.Agent, error) {
	var res domain.Resolver
	switch st := domain.Strategy(strategy); st {
	case "", domain.AIAgent:
		if s.Agent == nil {
			return nil, domain.Errorf(domain.EUNAVAILABLE, "AI_AGENT is not configured in this server")
		}
		r, err := s.Agent.Resolver()
		if err != nil {
			return nil, err
		}
		res = r
	default:
		o, err := agent.New(st)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "conflict_resolution: %q: want AI_AGENT (the default), FIRST_WIN, LAST_WIN or PRIORITY", strategy)
		}
		res = o
	}
	return negotiation.New(res, limits)
}

// writeAllocation answers with the plan, or the error; an allocation that
// cannot fit is a 422 carrying the plan that shows why.
func (s *Server) writeAllocation(w http.ResponseWriter, r *http.Request, plan *domain.Plan, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, plan)
	case plan != nil && domain.ErrorCode(err) == domain.EINFEASIBLE:
		writeJSON(w, http.StatusUnprocessableEntity, struct {
			errorBody
			Plan *domain.Plan `json:"plan"`
		}{errorBody{Code: domain.EINFEASIBLE, Message: domain.ErrorMessage(err)}, plan})
	default:
		s.writeError(w, r, err)
	}
}

// decodeBody reads one JSON object strictly: unknown fields, trailing data
// and a body over the limit are errors that say so.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return domain.Errorf(domain.EINVALID, "request body: over %d bytes", tooBig.Limit)
		}
		return domain.Errorf(domain.EINVALID, "request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return domain.Errorf(domain.EINVALID, "request body: trailing data after the JSON object")
	}
	return nil
}

// problems collects what is wrong with a body, each naming its field.
type problems []domain.Problem

func (p *problems) add(where, format string, a ...any) {
	*p = append(*p, domain.Problem{Where: where, Message: fmt.Sprintf(format, a...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &domain.Error{Code: domain.EINVALID, Message: "invalid request", Problems: p}
}

func (p *problems) cpu(where, s string) int64 {
	v, err := quantity.ParseCPU(s)
	if err != nil {
		p.add(where, "%v", err)
	}
	return v
}

func (p *problems) bytes(where, s string) int64 {
	v, err := quantity.ParseBytes(s)
	if err != nil {
		p.add(where, "%v", err)
	}
	return v
}

func (p *problems) resources(where string, r resources, required bool) domain.Resources {
	var out domain.Resources
	for _, q := range []struct {
		name, value string
		set         func(int64)
		parse       func(string, string) int64
	}{
		{"cpu", r.CPU, func(v int64) { out.CPUMillicores = v }, p.cpu},
		{"memory", r.Memory, func(v int64) { out.MemoryBytes = v }, p.bytes},
		{"disk", r.Disk, func(v int64) { out.DiskBytes = v }, p.bytes},
	} {
		if q.value == "" {
			if required {
				p.add(where+"."+q.name, "required, e.g. \"8 cores\", \"32GB\"")
			}
			continue
		}
		q.set(q.parse(where+"."+q.name, q.value))
	}
	return out
}

func (p *problems) request(where string, r *request) negotiation.Request {
	if r == nil {
		p.add(where, "required: a source and its services")
		return negotiation.Request{}
	}
	src := domain.Source{Type: domain.SourceType(r.Source.Type), ID: r.Source.ID, Host: r.Source.Host, Path: r.Source.Path,
		Priority: r.Source.Priority, Tags: r.Source.Tags}
	snap := &domain.Snapshot{Tags: r.Source.Tags, Services: []domain.Service{}, Env: []domain.EnvVar{}}
	for i, sv := range r.Services {
		at := fmt.Sprintf("%s.services[%d]", where, i)
		svc := domain.Service{Name: sv.Name, Image: sv.Image, DependsOn: append([]string{}, sv.DependsOn...), Volumes: []string{},
			Ports: []domain.Port{}, Optional: sv.Optional, LatencySensitive: sv.LatencySensitive}
		for j, pt := range sv.Ports {
			proto := strings.ToLower(pt.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			if proto != "tcp" && proto != "udp" || pt.Host < 1 || pt.Host > 65535 || pt.Container < 1 || pt.Container > 65535 {
				p.add(fmt.Sprintf("%s.ports[%d]", at, j), "want host and container ports 1-65535 and protocol tcp or udp")
			}
			svc.Ports = append(svc.Ports, domain.Port{Host: pt.Host, Container: pt.Container, Protocol: proto})
		}
		svc.Requested = p.resources(at+".requested", sv.Requested, true)
		svc.Minimum = svc.Requested
		if sv.Minimum != nil {
			svc.Minimum = p.resources(at+".minimum", *sv.Minimum, true)
		}
		svc.Runtime = domain.Digest([]byte(sv.Image))
		svc.Digest = svc.DefinitionDigest()
		snap.Services = append(snap.Services, svc)
	}
	for _, e := range r.Env {
		snap.Env = append(snap.Env, domain.EnvVar{Name: e.Name, Value: e.Value})
	}
	return negotiation.Request{Source: src, Snapshot: snap}
}
