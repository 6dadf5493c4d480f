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
	conflicts      []domain.Conflict
	renamedVolumes map[volumeID]string // current name -> name in its source
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
	if c.service(serviceID{snap, name}) != nil {
		return serviceID{snap, name}, true
	}
	for i := range c.snaps {
		if i != snap && c.service(serviceID{i, name}) != nil {
			return serviceID{i, name}, true
		}
	}
	return serviceID{}, false
}

// dependents returns every service that needs id, directly or transitively,
// in a stable order.
func (c *Composition) dependents(id serviceID) []serviceID {
	var out []serviceID
	seen := map[serviceID]bool{id: true}
	queue := []serviceID{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for si, s := range c.snaps {
			for _, svc := range s.Services {
				dep := serviceID{si, svc.Name}
				if seen[dep] {
					continue
				}
				for _, name := range svc.DependsOn {
					if target, ok := c.resolve(si, name); ok && target == cur {
						seen[dep] = true
						out = append(out, dep)
						queue = append(queue, dep)
						break
					}
				}
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
