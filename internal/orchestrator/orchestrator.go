// Package orchestrator runs the compose workflow: retrieve every source's
// snapshot, settle the conflicts among them with the manifest's strategy and
// build the plan. It sees sources and resolvers only through the interfaces
// in package domain; cmd/ wires the concrete ones in.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// maxConcurrentRetrievals bounds how many sources are fetched at once.
const maxConcurrentRetrievals = 8

// Orchestrator composes environments.
type Orchestrator struct {
	sources   map[domain.SourceType]domain.SnapshotSource
	resolvers map[domain.Strategy]domain.Resolver
}

// New returns an orchestrator with no sources or resolvers; add them with
// WithSource and WithResolver.
func New() *Orchestrator {
	return &Orchestrator{
		sources:   map[domain.SourceType]domain.SnapshotSource{},
		resolvers: map[domain.Strategy]domain.Resolver{},
	}
}

// WithSource makes src retrieve sources of type t.
func (o *Orchestrator) WithSource(t domain.SourceType, src domain.SnapshotSource) *Orchestrator {
	o.sources[t] = src
	return o
}

// WithResolver makes r settle the conflicts of manifests that name its strategy.
func (o *Orchestrator) WithResolver(r domain.Resolver) *Orchestrator {
	o.resolvers[r.Strategy()] = r
	return o
}

// Plan composes m and returns its plan. When demand exceeds a limit it
// returns the plan together with an EINFEASIBLE error, so the caller can show
// what does not fit. Retrieval errors keep their codes (ENOTFOUND, EINVALID,
// EUNAVAILABLE); a strategy with no resolver is EUNAVAILABLE.
func (o *Orchestrator) Plan(ctx context.Context, m *domain.Manifest) (*domain.Plan, error) {
	resolver, ok := o.resolvers[m.ConflictResolution]
	if !ok {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "conflict_resolution %s is not available in this process; available: %s", m.ConflictResolution, o.available())
	}
	for i, s := range m.Sources {
		if o.sources[s.Type] == nil {
			return nil, domain.Errorf(domain.EINVALID, "/sources/%d: no %s sources can be retrieved here (%s)", i, s.Type, s.Ref())
		}
	}
	snaps, err := o.retrieve(ctx, m)
	if err != nil {
		return nil, err
	}
	comp, err := composer.New(m, snaps)
	if err != nil {
		return nil, err
	}
	for _, kind := range domain.ClaimKinds {
		decisions := comp.Decisions(kind)
		if len(decisions) == 0 {
			continue
		}
		choices, err := resolver.Resolve(ctx, m, decisions)
		if err != nil {
			return nil, fmt.Errorf("settling %s conflicts with %s: %w", kind, m.ConflictResolution, err)
		}
		if len(choices) != len(decisions) {
			return nil, fmt.Errorf("%s answered %d of %d %s conflicts", m.ConflictResolution, len(choices), len(decisions), kind)
		}
		for i, d := range decisions {
			if err := comp.Apply(d, choices[i]); err != nil {
				return nil, fmt.Errorf("settling %s: %w", d.Conflict.Key, err)
			}
		}
	}
	plan, err := comp.Plan()
	if err != nil {
		return nil, err
	}
	if !plan.Feasible {
		return plan, infeasible(plan)
	}
	return plan, nil
}

func (o *Orchestrator) available() string {
	var names []string
	for _, s := range domain.Strategies {
		if _, ok := o.resolvers[s]; ok {
			names = append(names, string(s))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}

// retrieve fetches every source's snapshot concurrently. It reports every
// source that failed, not just the first.
func (o *Orchestrator) retrieve(ctx context.Context, m *domain.Manifest) ([]*domain.Snapshot, error) {
	snaps := make([]*domain.Snapshot, len(m.Sources))
	errs := make([]error, len(m.Sources))
	sem := make(chan struct{}, maxConcurrentRetrievals)
	var wg sync.WaitGroup
	for i, src := range m.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			snap, err := o.sources[src.Type].Retrieve(ctx, src)
			if err != nil {
				errs[i] = fmt.Errorf("retrieving %s: %w", src.Ref(), err)
				return
			}
			snaps[i] = snap
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return snaps, nil
}

func infeasible(p *domain.Plan) error {
	var problems []domain.Problem
	l, t := p.Limits, p.Totals
	if t.CPUMillicores > l.CPUMillicores {
		problems = append(problems, domain.Problem{Where: "cpu", Message: fmt.Sprintf("requested %s, limit %s", quantity.FormatCPU(t.CPUMillicores), quantity.FormatCPU(l.CPUMillicores))})
	}
	if t.MemoryBytes > l.MemoryBytes {
		problems = append(problems, domain.Problem{Where: "memory", Message: fmt.Sprintf("requested %s, limit %s", quantity.FormatBytes(t.MemoryBytes), quantity.FormatBytes(l.MemoryBytes))})
	}
	if t.DiskBytes > l.DiskBytes {
		problems = append(problems, domain.Problem{Where: "disk", Message: fmt.Sprintf("requested %s, limit %s", quantity.FormatBytes(t.DiskBytes), quantity.FormatBytes(l.DiskBytes))})
	}
	return &domain.Error{Code: domain.EINFEASIBLE, Message: "the composition does not fit its resource_limits", Problems: problems}
}
