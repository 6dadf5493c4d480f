package composer

import (
	"fmt"
	"slices"
	"sort"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Plan builds the plan of the composition as it stands. It returns EINVALID
// when the result has a dependency cycle or a service name held twice (a
// conflict left unsettled). Feasible is false when demand exceeds a limit.
func (c *Composition) Plan() (*domain.Plan, error) {
	g, err := c.Graph()
	if err != nil {
		return nil, err
	}
	if err := g.CheckCycles(); err != nil {
		return nil, err
	}
	m := c.manifest
	p := &domain.Plan{
		Name:        m.Name,
		Strategy:    m.ConflictResolution,
		Sources:     []domain.PlanSource{},
		Services:    []domain.PlanService{},
		Volumes:     []domain.PlanVolume{},
		Files:       []domain.PlanFile{},
		Env:         []domain.PlanEnv{},
		Conflicts:   slices.Clone(c.conflicts),
		Limits:      m.ResourceLimits,
		Dropped:     slices.Clone(c.dropped),
		Concessions: slices.Clone(c.concessions),
	}
	if p.Concessions == nil {
		p.Concessions = []domain.Concession{}
	}
	if p.Conflicts == nil {
		p.Conflicts = []domain.Conflict{}
	}
	if p.Dropped == nil {
		p.Dropped = []domain.Dropped{}
	}
	seen := map[string]domain.SourceRef{}
	for si, s := range c.snaps {
		ref := s.Source.Ref()
		p.Sources = append(p.Sources, domain.PlanSource{
			Ref: ref, Type: string(s.Source.Type), Priority: s.Source.Priority, Tags: nonNil(s.Source.Tags),
			Services: len(s.Services), Env: len(s.Env), Files: len(s.Files),
		})
		for _, svc := range s.Services {
			if other, dup := seen["service:"+svc.Name]; dup {
				return nil, fmt.Errorf("composer: service %s held by both %s and %s after resolution", svc.Name, other, ref)
			}
			seen["service:"+svc.Name] = ref
			p.Services = append(p.Services, domain.PlanService{
				Name: svc.Name, Source: ref, RenamedFrom: svc.RenamedFrom,
				SharedWith: c.shared[serviceID{si, svc.Name}],
				Image:      svc.Image, Ports: nonNil(svc.Ports), DependsOn: nonNil(svc.DependsOn), Volumes: nonNil(svc.Volumes),
				Optional: svc.Optional, LatencySensitive: svc.LatencySensitive, Requested: svc.Requested, Minimum: svc.Minimum, Reads: slices.Clone(svc.Reads),
				// A service gets what it asks for until an allocator says
				// otherwise.
				Allocation: svc.Requested,
			})
			p.Totals = p.Totals.Add(svc.Requested)
			p.Requested = p.Requested.Add(svc.Requested)
			p.Minimums = p.Minimums.Add(svc.Minimum)
		}
		for _, v := range s.Volumes {
			if len(volumeUsers(s, v.Name)) == 0 {
				continue
			}
			p.Volumes = append(p.Volumes, domain.PlanVolume{Name: v.Name, Source: ref, RenamedFrom: c.renamedVolumes[volumeID{si, v.Name}]})
		}
		for _, f := range s.Files {
			p.Files = append(p.Files, domain.PlanFile{Path: f.Path, Source: ref, Digest: f.Digest, Size: f.Size})
		}
		for _, e := range s.Env {
			pe := domain.PlanEnv{Name: e.Name, Source: ref}
			if e.Secret() || e.Digest != "" {
				pe.Digest = e.ValueDigest()
			} else {
				v := e.Value
				pe.Value = &v
			}
			p.Env = append(p.Env, pe)
		}
	}
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Name < p.Services[j].Name })
	sort.Slice(p.Volumes, func(i, j int) bool { return p.Volumes[i].Name < p.Volumes[j].Name })
	sort.Slice(p.Files, func(i, j int) bool { return p.Files[i].Path < p.Files[j].Path })
	sort.Slice(p.Env, func(i, j int) bool { return p.Env[i].Name < p.Env[j].Name })
	l, t := p.Limits, p.Totals
	p.Feasible = t.CPUMillicores <= l.CPUMillicores && t.MemoryBytes <= l.MemoryBytes && t.DiskBytes <= l.DiskBytes
	return p, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return slices.Clone(s)
}
