// Package composer holds the working state of a composition: it extracts
// claims from every snapshot, finds the conflicts among them, lists the
// candidate resolutions of each, carries out the chosen ones and builds the
// plan. It knows nothing of how a resolution is chosen; resolvers do that.
package composer

import (
	"fmt"
	"slices"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Composition is a composition in progress. It is not safe for concurrent use.
type Composition struct {
	manifest       *domain.Manifest
	snaps          []*domain.Snapshot // deep copies, in manifest order
	shared         map[serviceID][]domain.SourceRef
	dropped        []domain.Dropped
	concessions    []domain.Concession
	conflicts      []domain.Conflict
	renamedVolumes map[volumeID]string // current name -> name in its source
	idx            *dependencyIndex    // nil after any change
}

// serviceID names a service of one snapshot.
type serviceID struct {
	snap int
	name string
}

type volumeID struct {
	snap int
	name string
}

// New starts a composition of snapshots, one per manifest source in order.
func New(m *domain.Manifest, snaps []*domain.Snapshot) (*Composition, error) {
	if len(snaps) != len(m.Sources) {
		return nil, fmt.Errorf("composer: %d snapshots for %d sources", len(snaps), len(m.Sources))
	}
	c := &Composition{
		manifest:       m,
		shared:         map[serviceID][]domain.SourceRef{},
		renamedVolumes: map[volumeID]string{},
	}
	for i, s := range snaps {
		if s == nil || s.Source.Ref() != m.Sources[i].Ref() {
			return nil, fmt.Errorf("composer: snapshot %d does not belong to source %s", i, m.Sources[i].Ref())
		}
		c.snaps = append(c.snaps, cloneSnapshot(s, m.Sources[i]))
	}
	return c, nil
}

func cloneSnapshot(s *domain.Snapshot, src domain.Source) *domain.Snapshot {
	out := *s
	out.Source = src
	out.Tags = slices.Clone(s.Tags)
	out.Services = make([]domain.Service, len(s.Services))
	for i, svc := range s.Services {
		svc.Ports = slices.Clone(svc.Ports)
		svc.DependsOn = slices.Clone(svc.DependsOn)
		svc.Volumes = slices.Clone(svc.Volumes)
		svc.Reads = slices.Clone(svc.Reads)
		out.Services[i] = svc
	}
	out.Env = slices.Clone(s.Env)
	out.Files = slices.Clone(s.Files)
	out.Volumes = slices.Clone(s.Volumes)
	return &out
}

// Conflicts returns the conflicts settled so far, in the order they were settled.
func (c *Composition) Conflicts() []domain.Conflict { return c.conflicts }

func (c *Composition) ref(snap int) domain.SourceRef { return c.snaps[snap].Source.Ref() }

func (c *Composition) snapIndex(ref domain.SourceRef) int {
	for i, s := range c.snaps {
		if s.Source.Ref() == ref {
			return i
		}
	}
	return -1
}

func (c *Composition) service(id serviceID) *domain.Service {
	if id.snap < 0 || id.snap >= len(c.snaps) {
		return nil
	}
	svcs := c.snaps[id.snap].Services
	for i := range svcs {
		if svcs[i].Name == id.name {
			return &svcs[i]
		}
	}
	return nil
}

// resolve finds the service a reference from snapshot snap to name means: the
// snapshot's own service of that name if it has one, otherwise the one service
// of that name elsewhere (a shared or kept instance serves every source).
func (c *Composition) resolve(snap int, name string) (serviceID, bool) {
	holders := c.index().byName[name]
	for _, id := range holders {
		if id.snap == snap {
			return id, true
		}
	}
	if len(holders) > 0 {
		return holders[0], true
	}
	return serviceID{}, false
}

// dependencyIndex answers who holds a name and who needs a service. It is
// built on first use and thrown away by every change to the composition.
type dependencyIndex struct {
	byName     map[string][]serviceID // in manifest order
	dependents map[serviceID][]serviceID
}

func (c *Composition) index() *dependencyIndex {
	if c.idx != nil {
		return c.idx
	}
	idx := &dependencyIndex{byName: map[string][]serviceID{}, dependents: map[serviceID][]serviceID{}}
	for si, s := range c.snaps {
		for _, svc := range s.Services {
			idx.byName[svc.Name] = append(idx.byName[svc.Name], serviceID{si, svc.Name})
		}
	}
	c.idx = idx
	for si, s := range c.snaps {
		for _, svc := range s.Services {
			for _, name := range svc.DependsOn {
				if target, ok := c.resolve(si, name); ok {
					idx.dependents[target] = append(idx.dependents[target], serviceID{si, svc.Name})
				}
			}
		}
	}
	return idx
}

// dependents returns every service that needs id, directly or transitively,
// in a stable order.
func (c *Composition) dependents(id serviceID) []serviceID {
	idx := c.index()
	var out []serviceID
	seen := map[serviceID]bool{id: true}
	queue := []serviceID{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, dep := range idx.dependents[cur] {
			if !seen[dep] {
				seen[dep] = true
				out = append(out, dep)
				queue = append(queue, dep)
			}
		}
	}
	return out
}

func (c *Composition) allServiceNames() map[string]bool {
	names := map[string]bool{}
	for _, s := range c.snaps {
		for _, svc := range s.Services {
			names[svc.Name] = true
		}
	}
	return names
}

func (c *Composition) claimedPorts() map[string]bool {
	ports := map[string]bool{}
	for _, s := range c.snaps {
		for _, svc := range s.Services {
			for _, p := range svc.Ports {
				ports[portKey(p.Protocol, p.Host)] = true
			}
		}
	}
	return ports
}

func portKey(protocol string, host int) string { return fmt.Sprintf("port:%s/%d", protocol, host) }

// Totals returns the requested and minimum compute of every service in the composition.
func (c *Composition) Totals() (requested, minimum domain.Resources) {
	for _, s := range c.snaps {
		for _, svc := range s.Services {
			requested = requested.Add(svc.Requested)
			minimum = minimum.Add(svc.Minimum)
		}
	}
	return requested, minimum
}
