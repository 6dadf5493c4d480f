package composer

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// maxAlternatives bounds the alternatives a plan shows for one conflict.
const maxAlternatives = 3

// Apply carries out the candidate a resolver chose for a decision and records
// the settled conflict. A change whose target already left the composition
// (dropped with a dependency settled earlier in the round) is skipped, and the
// resolution says so.
func (c *Composition) Apply(d domain.Decision, ch domain.Choice) error {
	if ch.Candidate < 0 || ch.Candidate >= len(d.Candidates) {
		return fmt.Errorf("resolver chose candidate %d of %d for %s", ch.Candidate, len(d.Candidates), d.Conflict.Key)
	}
	cand := d.Candidates[ch.Candidate]
	if cand.Rejected != "" {
		return fmt.Errorf("resolver chose a rejected %s candidate for %s: %s", cand.Resolution.Action, d.Conflict.Key, cand.Rejected)
	}
	res := cand.Resolution
	res.Changes = slices.Clone(res.Changes)
	if ch.Reason != "" {
		res.Detail = ch.Reason + ". " + res.Detail
	}
	if ch.Scores != nil {
		if len(ch.Scores) != len(d.Candidates) {
			return fmt.Errorf("resolver gave %d scores for %d candidates of %s", len(ch.Scores), len(d.Candidates), d.Conflict.Key)
		}
		res.Score = &ch.Scores[ch.Candidate]
		res.Alternatives = alternatives(d, ch)
		res.Margin, res.Ambiguous = ch.Margin, ch.Ambiguous
	}
	var winner domain.SourceRef
	if res.Winner != nil {
		winner = *res.Winner
	}
	if gone := c.winnerGone(d.Conflict, winner); gone != "" {
		// Dropped earlier in the round: serving the others with it, or
		// making way for it, would lose them. Nothing is done; whatever
		// still collides is listed again (Decisions) and settled anew.
		res.Changes = nil
		res.Detail += fmt.Sprintf(" (not carried out: %s had already left the composition, so what still collides is settled again)", gone)
		cf := d.Conflict
		cf.Resolution = &res
		c.conflicts = append(c.conflicts, cf)
		return nil
	}
	var moot []string
	for _, change := range res.Changes {
		if !c.apply(change, winner) {
			moot = append(moot, fmt.Sprintf("%s %s", change.Source, firstNonEmpty(change.Service, change.Name)))
		}
	}
	if len(moot) > 0 {
		res.Detail += fmt.Sprintf(" (%s had already left the composition)", strings.Join(moot, ", "))
	}
	cf := d.Conflict
	cf.Resolution = &res
	c.conflicts = append(c.conflicts, cf)
	return nil
}

// winnerGone names the winner's service of a service or port conflict when
// it is no longer in the composition, and returns "" otherwise.
func (c *Composition) winnerGone(cf domain.Conflict, winner domain.SourceRef) string {
	if cf.Kind != domain.ServiceClaim && cf.Kind != domain.PortClaim {
		return ""
	}
	snap := c.snapIndex(winner)
	for _, cl := range cf.Claimants {
		if cl.Source == winner && cl.Owner != "" && snap >= 0 && c.service(serviceID{snap, cl.Owner}) == nil {
			return fmt.Sprintf("%s (%s)", cl.Owner, winner)
		}
	}
	return ""
}

func alternatives(d domain.Decision, ch domain.Choice) []domain.Alternative {
	var idx []int
	for i, cand := range d.Candidates {
		if i != ch.Candidate && cand.Rejected == "" && cand.Overfills == "" {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return ch.Scores[idx[a]] > ch.Scores[idx[b]] })
	if len(idx) > maxAlternatives {
		idx = idx[:maxAlternatives]
	}
	out := make([]domain.Alternative, 0, len(idx))
	for _, i := range idx {
		r := d.Candidates[i].Resolution
		out = append(out, domain.Alternative{Action: r.Action, Winner: r.Winner, Detail: r.Detail, Score: &ch.Scores[i]})
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// apply makes one change; it reports false when the target is gone.
func (c *Composition) apply(ch domain.Change, winner domain.SourceRef) bool {
	c.idx = nil
	snap := c.snapIndex(ch.Source)
	if snap < 0 {
		return false
	}
	s := c.snaps[snap]
	switch ch.Op {
	case domain.OpShareService:
		if !c.removeService(serviceID{snap, ch.Service}) {
			return false
		}
		w := serviceID{c.snapIndex(winner), ch.Service}
		c.shared[w] = append(c.shared[w], ch.Source)
	case domain.OpRenameService:
		svc := c.service(serviceID{snap, ch.Service})
		if svc == nil {
			return false
		}
		if svc.RenamedFrom == "" {
			svc.RenamedFrom = svc.Name
		}
		svc.Name = ch.To
		for i := range s.Services {
			for j, dep := range s.Services[i].DependsOn {
				if dep == ch.Service {
					s.Services[i].DependsOn[j] = ch.To
				}
			}
			slices.Sort(s.Services[i].DependsOn)
		}
		if refs, ok := c.shared[serviceID{snap, ch.Service}]; ok {
			delete(c.shared, serviceID{snap, ch.Service})
			c.shared[serviceID{snap, ch.To}] = refs
		}
	case domain.OpDropService:
		root := serviceID{snap, ch.Service}
		if c.service(root) == nil {
			return false
		}
		for _, id := range c.dropSet(root) {
			reason := ch.Reason
			if id != root {
				reason = fmt.Sprintf("depends on %s (%s), which was dropped: %s", ch.Service, ch.Source, ch.Reason)
			}
			// A dropped service goes by the name its source gave it.
			name := id.name
			if svc := c.service(id); svc.RenamedFrom != "" {
				name = svc.RenamedFrom
				reason += fmt.Sprintf(" (it had been renamed %s)", id.name)
			}
			c.removeService(id)
			c.dropped = append(c.dropped, domain.Dropped{Name: name, Source: c.ref(id.snap), Reason: reason})
			// The sources it served as a shared instance lose it too.
			for _, ref := range c.shared[id] {
				c.dropped = append(c.dropped, domain.Dropped{Name: name, Source: ref,
					Reason: fmt.Sprintf("was served by %s (%s), which was dropped: %s", id.name, c.ref(id.snap), reason)})
			}
			delete(c.shared, id)
		}
	case domain.OpRemapPort:
		svc := c.service(serviceID{snap, ch.Service})
		if svc == nil {
			return false
		}
		for i, p := range svc.Ports {
			if p.Protocol == ch.Protocol && p.Host == ch.From {
				svc.Ports[i].Host = ch.ToPort
			}
		}
		sortPorts(svc.Ports)
	case domain.OpRenameVolume:
		v := c.volume(volumeID{snap, ch.Name})
		if v == nil {
			return false
		}
		v.Name = ch.To
		c.renamedVolumes[volumeID{snap, ch.To}] = ch.Name
		for i := range s.Services {
			for j, name := range s.Services[i].Volumes {
				if name == ch.Name {
					s.Services[i].Volumes[j] = ch.To
				}
			}
			slices.Sort(s.Services[i].Volumes)
		}
	case domain.OpShareVolume:
		n := len(s.Volumes)
		s.Volumes = slices.DeleteFunc(s.Volumes, func(v domain.Volume) bool { return v.Name == ch.Name })
		return len(s.Volumes) < n
	case domain.OpDiscardEnv:
		n := len(s.Env)
		s.Env = slices.DeleteFunc(s.Env, func(e domain.EnvVar) bool { return e.Name == ch.Name })
		return len(s.Env) < n
	case domain.OpMergeEnv:
		v := c.envVar(snap, ch.Name)
		if v == nil {
			return false
		}
		v.Value, v.Digest = ch.To, ""
	case domain.OpDiscardFile:
		n := len(s.Files)
		s.Files = slices.DeleteFunc(s.Files, func(f domain.File) bool { return f.Path == ch.Name })
		return len(s.Files) < n
	default:
		return false
	}
	return true
}

// dropSet is id and everything that depends on it, which must leave with it
// so no dependency is left dangling.
func (c *Composition) dropSet(id serviceID) []serviceID {
	return append([]serviceID{id}, c.dependents(id)...)
}

func (c *Composition) removeService(id serviceID) bool {
	c.idx = nil
	s := c.snaps[id.snap]
	n := len(s.Services)
	s.Services = slices.DeleteFunc(s.Services, func(svc domain.Service) bool { return svc.Name == id.name })
	return len(s.Services) < n
}

func sortPorts(ports []domain.Port) {
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Protocol != ports[j].Protocol {
			return ports[i].Protocol < ports[j].Protocol
		}
		if ports[i].Host != ports[j].Host {
			return ports[i].Host < ports[j].Host
		}
		return ports[i].Container < ports[j].Container
	})
}
