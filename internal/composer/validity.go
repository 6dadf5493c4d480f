package composer

import (
	"fmt"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// checkMinimums marks (Overfills) the candidates of d after which the
// firm minimums of the required services could no longer fit the limits,
// when another candidate leaves them fitting. Firm are the minimums of template
// services: a live host's provider may still concede (negotiate), so its
// services do not count, and optional services may be dropped by the
// allocator. When no candidate fits, none is rejected here: the allocator
// reports what does not fit.
// firm is c.firmMinimums(), computed once for the round.
func (c *Composition) checkMinimums(d *domain.Decision, firm domain.Resources) {
	limits := c.manifest.ResourceLimits
	if fits(firm, limits) {
		return
	}
	after := make([]domain.Resources, len(d.Candidates))
	any := false
	for j, cand := range d.Candidates {
		if cand.Rejected != "" {
			continue
		}
		after[j] = firm.Sub(c.firmRemoved(cand.Resolution.Changes))
		any = any || fits(after[j], limits)
	}
	if !any {
		return
	}
	for j, cand := range d.Candidates {
		if cand.Rejected != "" || fits(after[j], limits) {
			continue
		}
		d.Candidates[j].Overfills = "the required template services' minimums would need " + over(after[j], limits) +
			"; a candidate that drops or shares a service fits"
	}
}

// firmMinimums is the sum of the minimums of the required template
// services.
func (c *Composition) firmMinimums() domain.Resources {
	var firm domain.Resources
	for _, s := range c.snaps {
		if s.Source.Type != domain.TemplateSource {
			continue
		}
		for _, svc := range s.Services {
			if !svc.Optional {
				firm = firm.Add(svc.Minimum)
			}
		}
	}
	return firm
}

// firmRemoved is the firm minimum the changes take out: template services
// dropped (with the dependents that follow them) or served by another.
func (c *Composition) firmRemoved(changes []domain.Change) domain.Resources {
	var out domain.Resources
	seen := map[serviceID]bool{}
	for _, ch := range changes {
		si := c.snapIndex(ch.Source)
		if si < 0 {
			continue
		}
		var ids []serviceID
		switch ch.Op {
		case domain.OpDropService:
			ids = c.dropSet(serviceID{si, ch.Service})
		case domain.OpShareService:
			ids = []serviceID{{si, ch.Service}}
		}
		for _, id := range ids {
			svc := c.service(id)
			if seen[id] || svc == nil || svc.Optional || c.snaps[id.snap].Source.Type != domain.TemplateSource {
				continue
			}
			seen[id] = true
			out = out.Add(svc.Minimum)
		}
	}
	return out
}

// fits reports whether r is within the limits (a zero limit is none).
func fits(r, limits domain.Resources) bool {
	return (limits.CPUMillicores == 0 || r.CPUMillicores <= limits.CPUMillicores) &&
		(limits.MemoryBytes == 0 || r.MemoryBytes <= limits.MemoryBytes) &&
		(limits.DiskBytes == 0 || r.DiskBytes <= limits.DiskBytes)
}

// over says which of r exceed the limits, e.g. "cpu 9 cores over the limit 8 cores".
func over(r, limits domain.Resources) string {
	var parts []string
	if limits.CPUMillicores > 0 && r.CPUMillicores > limits.CPUMillicores {
		parts = append(parts, fmt.Sprintf("cpu %s over the limit %s", quantity.FormatCPU(r.CPUMillicores), quantity.FormatCPU(limits.CPUMillicores)))
	}
	if limits.MemoryBytes > 0 && r.MemoryBytes > limits.MemoryBytes {
		parts = append(parts, fmt.Sprintf("memory %s over the limit %s", quantity.FormatBytes(r.MemoryBytes), quantity.FormatBytes(limits.MemoryBytes)))
	}
	if limits.DiskBytes > 0 && r.DiskBytes > limits.DiskBytes {
		parts = append(parts, fmt.Sprintf("disk %s over the limit %s", quantity.FormatBytes(r.DiskBytes), quantity.FormatBytes(limits.DiskBytes)))
	}
	return strings.Join(parts, ", ")
}
