package composer

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// round reserves the names and ports that candidates of one round propose,
// so two conflicts settled together never move onto the same free spot.
type round struct {
	names map[string]bool
	ports map[string]bool
	// decisionPorts and decisionNames are the free ports and names handed
	// out for the current decision.
	decisionPorts []int
	decisionNames map[string]string
}

// Decisions returns the conflicts of one kind that the composition holds now,
// each with every candidate resolution. Claims on one key with identical
// content are not conflicts: they are merged on the spot (the first source in
// manifest order keeps the instance) before the conflicts are listed.
func (c *Composition) Decisions(kind domain.ClaimKind) []domain.Decision {
	if kind.Compute() {
		return c.computeDecisions(kind)
	}
	var conflicting [][]claim
	for _, g := range groups(c.claims(kind)) {
		if sameContent(g) {
			c.mergeIdentical(g)
			continue
		}
		conflicting = append(conflicting, g)
	}
	r := &round{names: c.allServiceNames(), ports: c.claimedPorts()}
	var out []domain.Decision
	firm := c.firmMinimums()
	for _, g := range conflicting {
		d := domain.Decision{Conflict: c.conflictOf(g)}
		// Only one candidate of a decision is carried out, so all of them
		// draw their free ports from one list.
		r.decisionPorts, r.decisionNames = nil, map[string]string{}
		for _, w := range winners(g) {
			d.Candidates = append(d.Candidates, c.candidates(r, g, w)...)
		}
		if kind == domain.EnvClaim {
			if m, ok := c.mergeCandidate(g); ok {
				d.Candidates = append(d.Candidates, m)
			}
		}
		c.checkMinimums(&d, firm)
		out = append(out, d)
	}
	if len(out) > 0 {
		ctx := c.decisionContext(len(out))
		for i := range out {
			out[i].Context = ctx
		}
	}
	return out
}

// decisionContext describes the composition as it stands, for a round of n
// decisions.
func (c *Composition) decisionContext(n int) *domain.DecisionContext {
	var facts []domain.ServiceFacts
	for _, m := range c.Members() {
		facts = append(facts, domain.ServiceFacts{
			Source: m.Source.Ref(), Name: m.Name, Optional: m.Optional, LatencySensitive: m.LatencySensitive, Dependents: len(m.Dependents),
			Requested: m.Requested, Minimum: m.Minimum,
		})
	}
	captured := map[domain.SourceRef]time.Time{}
	for _, s := range c.snaps {
		if !s.CapturedAt.IsZero() {
			captured[s.Source.Ref()] = s.CapturedAt
		}
	}
	return domain.NewDecisionContext(facts, captured, n)
}

func (c *Composition) conflictOf(g []claim) domain.Conflict {
	cf := domain.Conflict{Kind: g[0].Kind, Key: g[0].Key}
	for _, x := range g {
		cl := domain.Claimant{Source: x.Source, Owner: x.Owner}
		if svc := c.service(serviceID{x.snap, x.Owner}); svc != nil && (x.Kind == domain.ServiceClaim || x.Kind == domain.PortClaim) {
			cl.Optional = svc.Optional
		}
		cf.Claimants = append(cf.Claimants, cl)
	}
	return cf
}

// winners returns the index in g of each source's first claim, one per source.
func winners(g []claim) []int {
	var out []int
	for i := range g {
		if i == 0 || g[i].snap != g[i-1].snap {
			out = append(out, i)
		}
	}
	return out
}

// mergeIdentical settles claims with identical content: the first source keeps
// its instance and the others use it.
func (c *Composition) mergeIdentical(g []claim) {
	first := g[0]
	for _, x := range g[1:] {
		if x.snap == first.snap {
			continue
		}
		switch x.Kind {
		case domain.ServiceClaim:
			c.apply(domain.Change{Op: domain.OpShareService, Source: x.Source, Service: x.Owner}, first.Source)
		case domain.VolumeClaim:
			c.apply(domain.Change{Op: domain.OpShareVolume, Source: x.Source, Name: strings.TrimPrefix(x.Key, "volume:")}, first.Source)
		case domain.EnvClaim:
			c.apply(domain.Change{Op: domain.OpDiscardEnv, Source: x.Source, Name: strings.TrimPrefix(x.Key, "env:")}, first.Source)
		case domain.FileClaim:
			c.apply(domain.Change{Op: domain.OpDiscardFile, Source: x.Source, Name: strings.TrimPrefix(x.Key, "file:")}, first.Source)
		}
	}
}

// candidates lists the resolutions in which the claim g[w] wins. Losers whose
// content equals the winner's simply use the winner's in every candidate.
func (c *Composition) candidates(r *round, g []claim, w int) []domain.Candidate {
	win := g[w]
	winner := win.Source
	var losers, same []claim
	for _, x := range g {
		switch {
		case x.snap == win.snap:
		case x.Content == win.Content:
			same = append(same, x)
		default:
			losers = append(losers, x)
		}
	}
	var sameChanges []domain.Change
	for _, x := range same {
		switch x.Kind {
		case domain.ServiceClaim:
			sameChanges = append(sameChanges, domain.Change{Op: domain.OpShareService, Source: x.Source, Service: x.Owner})
		case domain.VolumeClaim:
			sameChanges = append(sameChanges, domain.Change{Op: domain.OpShareVolume, Source: x.Source, Name: keyName(x.Key)})
		case domain.EnvClaim:
			sameChanges = append(sameChanges, domain.Change{Op: domain.OpDiscardEnv, Source: x.Source, Name: keyName(x.Key)})
		case domain.FileClaim:
			sameChanges = append(sameChanges, domain.Change{Op: domain.OpDiscardFile, Source: x.Source, Name: keyName(x.Key)})
		}
	}
	mk := func(action domain.Action, detail string, changes []domain.Change, rejected string) domain.Candidate {
		return domain.Candidate{
			Resolution: domain.Resolution{Action: action, Winner: &winner, Detail: detail, Changes: append(append([]domain.Change(nil), sameChanges...), changes...)},
			Rejected:   rejected,
		}
	}
	var out []domain.Candidate
	switch win.Kind {
	case domain.ServiceClaim:
		out = append(out, c.shareCandidate(mk, win, losers))
		out = append(out, c.renameCandidate(r, mk, win, losers))
		out = append(out, c.dropCandidate(mk, win, losers))
	case domain.VolumeClaim:
		out = append(out, c.volumeRenameCandidate(r, mk, win, losers))
		out = append(out, c.volumeShareCandidate(mk, win, losers))
	case domain.PortClaim:
		out = append(out, c.remapCandidate(r, mk, win, losers))
		out = append(out, c.dropCandidate(mk, win, losers))
	case domain.EnvClaim, domain.FileClaim:
		op := domain.OpDiscardEnv
		what := "value"
		if win.Kind == domain.FileClaim {
			op, what = domain.OpDiscardFile, "content"
		}
		var changes []domain.Change
		var names []string
		for _, x := range losers {
			changes = append(changes, domain.Change{Op: op, Source: x.Source, Name: keyName(x.Key)})
			names = append(names, string(x.Source))
		}
		out = append(out, mk(domain.Keep, fmt.Sprintf("%s keeps its %s of %s; %s discarded", winner, what, keyName(win.Key), possessive(names, what)), changes, ""))
	}
	return out
}

func keyName(key string) string {
	_, name, _ := strings.Cut(key, ":")
	return name
}

func possessive(refs []string, what string) string {
	if len(refs) == 1 {
		return refs[0] + "'s " + what
	}
	return strings.Join(refs, ", ") + "'s " + what + "s"
}

type mkFunc func(domain.Action, string, []domain.Change, string) domain.Candidate

func (c *Composition) shareCandidate(mk mkFunc, win claim, losers []claim) domain.Candidate {
	ws := c.service(serviceID{win.snap, win.Owner})
	var changes []domain.Change
	var rejected []string
	for _, x := range losers {
		ls := c.service(serviceID{x.snap, x.Owner})
		if ls.Runtime != ws.Runtime {
			why := "runs something else"
			if ls.Image != ws.Image {
				why = fmt.Sprintf("runs image %s, not %s", ls.Image, ws.Image)
			} else {
				why = fmt.Sprintf("runs %s with a different command, environment or mounts", ls.Image)
			}
			rejected = append(rejected, fmt.Sprintf("%s in %s %s", x.Owner, x.Source, why))
			continue
		}
		changes = append(changes, domain.Change{Op: domain.OpShareService, Source: x.Source, Service: x.Owner})
	}
	detail := fmt.Sprintf("%s (%s) also serves %s: both run %s; the winner's ports, resources and dependencies are used", win.Owner, win.Source, refsOf(losers), ws.Image)
	return mk(domain.Share, detail, changes, strings.Join(rejected, "; "))
}

func (c *Composition) renameCandidate(r *round, mk mkFunc, win claim, losers []claim) domain.Candidate {
	var changes []domain.Change
	var parts []string
	for _, x := range losers {
		to := r.freeName(x.Owner, c.snaps[x.snap].Source)
		changes = append(changes, domain.Change{Op: domain.OpRenameService, Source: x.Source, Service: x.Owner, To: to})
		parts = append(parts, fmt.Sprintf("%s from %s becomes %s", x.Owner, x.Source, to))
	}
	detail := fmt.Sprintf("%s (%s) keeps the name; %s, with references to it rewritten", win.Owner, win.Source, strings.Join(parts, "; "))
	return mk(domain.Rename, detail, changes, "")
}

func (c *Composition) dropCandidate(mk mkFunc, win claim, losers []claim) domain.Candidate {
	var changes []domain.Change
	var parts []string
	seen := map[serviceID]bool{}
	for _, x := range losers {
		id := serviceID{x.snap, x.Owner}
		if seen[id] {
			continue
		}
		seen[id] = true
		changes = append(changes, domain.Change{Op: domain.OpDropService, Source: x.Source, Service: x.Owner,
			Reason: fmt.Sprintf("lost %s to %s (%s)", win.Key, win.Owner, win.Source)})
		part := fmt.Sprintf("%s from %s is dropped", x.Owner, x.Source)
		if deps := c.dependentsForDrop(id); len(deps) > 0 {
			part += " with its dependents " + strings.Join(deps, ", ")
		}
		parts = append(parts, part)
	}
	owner := win.Owner
	if owner == "" {
		owner = keyName(win.Key)
	}
	detail := fmt.Sprintf("%s (%s) keeps %s; %s", owner, win.Source, win.Key, strings.Join(parts, "; "))
	return mk(domain.Drop, detail, changes, "")
}

// dependentsForDrop names the services that would follow id out of the
// composition. During the service round two sources may still hold one name,
// so a source's own references are the ones that follow.
func (c *Composition) dependentsForDrop(id serviceID) []string {
	var names []string
	for _, d := range c.dropSet(id) {
		if d != id {
			names = append(names, d.name)
		}
	}
	return names
}

func (c *Composition) remapCandidate(r *round, mk mkFunc, win claim, losers []claim) domain.Candidate {
	protocol, host := parsePortKey(win.Key)
	var changes []domain.Change
	var parts []string
	rejected := ""
	for i, x := range losers {
		to, ok := r.decisionPort(i, protocol, host)
		if !ok {
			rejected = fmt.Sprintf("no free %s host port is left for %s", protocol, x.Owner)
			break
		}
		changes = append(changes, domain.Change{Op: domain.OpRemapPort, Source: x.Source, Service: x.Owner, Protocol: protocol, From: host, ToPort: to})
		parts = append(parts, fmt.Sprintf("%s from %s moves to host port %d", x.Owner, x.Source, to))
	}
	detail := fmt.Sprintf("%s (%s) keeps %s/%d; %s; container ports are unchanged", win.Owner, win.Source, protocol, host, strings.Join(parts, "; "))
	return mk(domain.Remap, detail, changes, rejected)
}

func parsePortKey(key string) (string, int) {
	var protocol string
	var host int
	rest := keyName(key)
	protocol, num, _ := strings.Cut(rest, "/")
	fmt.Sscanf(num, "%d", &host)
	return protocol, host
}

func (c *Composition) volumeRenameCandidate(r *round, mk mkFunc, win claim, losers []claim) domain.Candidate {
	var changes []domain.Change
	var parts []string
	name := keyName(win.Key)
	for _, x := range losers {
		to := r.freeName("volume:"+name, c.snaps[x.snap].Source)
		to = strings.TrimPrefix(to, "volume:")
		changes = append(changes, domain.Change{Op: domain.OpRenameVolume, Source: x.Source, Name: name, To: to})
		parts = append(parts, fmt.Sprintf("%s's %s becomes %s for %s", x.Source, name, to, x.Owner))
	}
	detail := fmt.Sprintf("%s keeps volume %s for %s; %s, so no two services share data by accident", win.Source, name, win.Owner, strings.Join(parts, "; "))
	return mk(domain.Rename, detail, changes, "")
}

func (c *Composition) volumeShareCandidate(mk mkFunc, win claim, losers []claim) domain.Candidate {
	name := keyName(win.Key)
	wv := c.volume(volumeID{win.snap, name})
	var changes []domain.Change
	var rejected []string
	for _, x := range losers {
		lv := c.volume(volumeID{x.snap, name})
		if lv == nil || wv == nil || lv.Digest != wv.Digest {
			rejected = append(rejected, fmt.Sprintf("%s declares %s differently", x.Source, name))
			continue
		}
		changes = append(changes, domain.Change{Op: domain.OpShareVolume, Source: x.Source, Name: name})
	}
	detail := fmt.Sprintf("one volume %s, from %s, is mounted by %s and by %s", name, win.Source, win.Owner, ownersOf(losers))
	return mk(domain.Share, detail, changes, strings.Join(rejected, "; "))
}

func (c *Composition) volume(id volumeID) *domain.Volume {
	vols := c.snaps[id.snap].Volumes
	for i := range vols {
		if vols[i].Name == id.name {
			return &vols[i]
		}
	}
	return nil
}

func refsOf(cl []claim) string {
	var s []string
	for _, x := range cl {
		s = append(s, string(x.Source))
	}
	return strings.Join(s, ", ")
}

func ownersOf(cl []claim) string {
	var s []string
	for _, x := range cl {
		s = append(s, x.Owner+" ("+string(x.Source)+")")
	}
	return strings.Join(s, ", ")
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_.-]+`)

// slug turns a source into a suffix fit for a Compose service or volume name.
func slug(src domain.Source) string {
	s := src.ID
	if src.Type == domain.LiveSource {
		s = src.Host + "-" + src.Path
	}
	s = strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(s), "-"), "-._")
	if s == "" {
		s = fmt.Sprintf("source%d", src.Index)
	}
	return s
}

// freeName returns name-<source> (or name-<source>-2, ...) not yet taken.
// Within one decision a source's name always gets the same new name.
func (r *round) freeName(name string, src domain.Source) string {
	base := name + "-" + slug(src)
	if to, ok := r.decisionNames[base]; ok {
		return to
	}
	to := base
	for n := 2; r.names[to]; n++ {
		to = fmt.Sprintf("%s-%d", base, n)
	}
	r.names[to] = true
	r.decisionNames[base] = to
	return to
}

// decisionPort returns the i-th free port of the current decision.
func (r *round) decisionPort(i int, protocol string, from int) (int, bool) {
	for len(r.decisionPorts) <= i {
		p, ok := r.freePort(protocol, from)
		if !ok {
			return 0, false
		}
		r.decisionPorts = append(r.decisionPorts, p)
	}
	return r.decisionPorts[i], true
}

// freePort returns the lowest host port above from (wrapping to 1024) that no
// service claims and no other candidate of this round proposes.
func (r *round) freePort(protocol string, from int) (int, bool) {
	for i := 1; i <= 65535; i++ {
		p := from + i
		if p > 65535 {
			p = 1024 + (p - 65536)
		}
		if p < 1024 || p > 65535 {
			continue
		}
		if k := portKey(protocol, p); !r.ports[k] {
			r.ports[k] = true
			return p, true
		}
	}
	return 0, false
}

// computeDecisions reports compute demand above a limit. Its only candidate
// is "allocate": package negotiate settles it, after every other conflict.
func (c *Composition) computeDecisions(kind domain.ClaimKind) []domain.Decision {
	requested, minimum := c.Totals()
	pick, format := measure(kind)
	req, lim, min := pick(requested), pick(c.manifest.ResourceLimits), pick(minimum)
	if req <= lim {
		return nil
	}
	cf := domain.Conflict{Kind: kind, Key: string(kind)}
	for _, s := range c.snaps {
		for _, svc := range s.Services {
			if pick(svc.Requested) > 0 {
				cf.Claimants = append(cf.Claimants, domain.Claimant{Source: s.Source.Ref(), Owner: svc.Name})
			}
		}
	}
	fit := "the services' minimums (" + format(min) + ") fit, so the allocator shares the limit out"
	if min > lim {
		fit = "even the services' minimums (" + format(min) + ") do not fit, so providers are asked for concessions and optional services may be dropped"
	}
	detail := fmt.Sprintf("%s requested exceeds the %s limit of %s by %s; %s", format(req), kind, format(lim), format(req-lim), fit)
	return []domain.Decision{{
		Conflict:   cf,
		Candidates: []domain.Candidate{{Resolution: domain.Resolution{Action: domain.Allocate, Detail: detail}}},
	}}
}

// measure returns how to read one kind of compute from Resources, and how to write it.
func measure(kind domain.ClaimKind) (func(domain.Resources) int64, func(int64) string) {
	switch kind {
	case domain.CPUClaim:
		return func(r domain.Resources) int64 { return r.CPUMillicores }, quantity.FormatCPU
	case domain.MemoryClaim:
		return func(r domain.Resources) int64 { return r.MemoryBytes }, quantity.FormatBytes
	default:
		return func(r domain.Resources) int64 { return r.DiskBytes }, quantity.FormatBytes
	}
}
