package composer

import (
	"fmt"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Member is a service of the composition as it stands, with what the
// negotiation and the allocator need to know of it.
type Member struct {
	Source   domain.Source
	Name     string // in the composition
	Original string // as its source names it (differs after a rename)
	Optional bool
	// LatencySensitive is the service's mark (domain.Service).
	LatencySensitive bool
	// Requested and Minimum are what it asks for and the least it accepts.
	Requested domain.Resources
	Minimum   domain.Resources
	// Dependents are the members that need it, directly or transitively, as
	// indexes into the slice Members returns.
	Dependents []int
}

// Members returns the services of the composition in manifest order, then
// in their snapshot's order.
func (c *Composition) Members() []Member {
	var out []Member
	at := map[serviceID]int{}
	var ids []serviceID
	for si, s := range c.snaps {
		for _, svc := range s.Services {
			id := serviceID{si, svc.Name}
			at[id] = len(out)
			ids = append(ids, id)
			original := svc.Name
			if svc.RenamedFrom != "" {
				original = svc.RenamedFrom
			}
			out = append(out, Member{
				Source: s.Source, Name: svc.Name, Original: original, Optional: svc.Optional, LatencySensitive: svc.LatencySensitive,
				Requested: svc.Requested, Minimum: svc.Minimum,
			})
		}
	}
	for i, id := range ids {
		for _, dep := range c.dependents(id) {
			out[i].Dependents = append(out[i].Dependents, at[dep])
		}
	}
	return out
}

// Concede lowers the minimum of the service its source calls original to
// offer, resource by resource (a minimum never rises), and records the
// answer. It reports the concession as recorded.
func (c *Composition) Concede(ref domain.SourceRef, original string, offer domain.Resources, basis string) (domain.Concession, error) {
	svc := c.serviceByOriginal(ref, original)
	if svc == nil {
		return domain.Concession{}, fmt.Errorf("composer: %s has no service %s to concede on", ref, original)
	}
	from := svc.Minimum
	to := domain.Resources{
		CPUMillicores: min(from.CPUMillicores, max(offer.CPUMillicores, 0)),
		MemoryBytes:   min(from.MemoryBytes, max(offer.MemoryBytes, 0)),
		DiskBytes:     min(from.DiskBytes, max(offer.DiskBytes, 0)),
	}
	cs := domain.Concession{Service: svc.Name, Source: ref, From: from, To: to, Granted: to != from}
	if cs.Granted {
		svc.Minimum = to
		cs.Reason = "the provider offered a lower minimum: " + basis
	} else {
		cs.Reason = "the provider's offer is no lower than the minimum: " + basis
	}
	c.concessions = append(c.concessions, cs)
	return cs, nil
}

// Refused records that a provider could not be asked for a concession on a
// service, or would not answer.
func (c *Composition) Refused(ref domain.SourceRef, original, reason string) {
	name, from := original, domain.Resources{}
	if svc := c.serviceByOriginal(ref, original); svc != nil {
		name, from = svc.Name, svc.Minimum
	}
	c.concessions = append(c.concessions, domain.Concession{Service: name, Source: ref, From: from, To: from, Reason: reason})
}

// Drop takes the service named name (in the composition) of source ref out,
// with everything that depends on it, recording reason. It returns what
// left.
func (c *Composition) Drop(ref domain.SourceRef, name, reason string) []domain.Dropped {
	n := len(c.dropped)
	c.apply(domain.Change{Op: domain.OpDropService, Source: ref, Service: name, Reason: reason}, "")
	return c.dropped[n:]
}

func (c *Composition) serviceByOriginal(ref domain.SourceRef, original string) *domain.Service {
	snap := c.snapIndex(ref)
	if snap < 0 {
		return nil
	}
	svcs := c.snaps[snap].Services
	for i := range svcs {
		if svcs[i].Name == original && svcs[i].RenamedFrom == "" || svcs[i].RenamedFrom == original {
			return &svcs[i]
		}
	}
	return nil
}
