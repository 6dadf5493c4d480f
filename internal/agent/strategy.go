// Package agent settles conflicts: the deterministic strategies FIRST_WIN,
// LAST_WIN and PRIORITY here, and the learned agent that scores candidates.
package agent

import (
	"context"
	"fmt"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Ordered is a deterministic strategy: it ranks the claimants' sources, lets
// the best-ranked one win, and then takes the first valid action from a fixed
// preference per kind of claim (see Preference).
type Ordered struct {
	strategy domain.Strategy
	// better reports whether source a outranks source b.
	better func(a, b domain.Source) bool
	// why explains the winner in words.
	why func(w domain.Source) string
}

var (
	_ domain.Resolver = (*Ordered)(nil)
)

// NewFirstWin returns the strategy in which the source listed first wins.
func NewFirstWin() *Ordered {
	return &Ordered{
		strategy: domain.FirstWin,
		better:   func(a, b domain.Source) bool { return a.Index < b.Index },
		why: func(w domain.Source) string {
			return fmt.Sprintf("FIRST_WIN: %s is listed first (source %d)", w.Ref(), w.Index)
		},
	}
}

// NewLastWin returns the strategy in which the source listed last wins.
func NewLastWin() *Ordered {
	return &Ordered{
		strategy: domain.LastWin,
		better:   func(a, b domain.Source) bool { return a.Index > b.Index },
		why: func(w domain.Source) string {
			return fmt.Sprintf("LAST_WIN: %s is listed last (source %d)", w.Ref(), w.Index)
		},
	}
}

// NewPriority returns the strategy in which the highest priority wins, ties
// going to the source listed first.
func NewPriority() *Ordered {
	return &Ordered{
		strategy: domain.Priority,
		better: func(a, b domain.Source) bool {
			if a.Priority != b.Priority {
				return a.Priority > b.Priority
			}
			return a.Index < b.Index
		},
		why: func(w domain.Source) string {
			return fmt.Sprintf("PRIORITY: %s has the highest priority (%d)", w.Ref(), w.Priority)
		},
	}
}

// New returns the deterministic strategy of that name. AI_AGENT is not one:
// it needs a model, which the caller wires in.
func New(s domain.Strategy) (*Ordered, error) {
	switch s {
	case domain.FirstWin:
		return NewFirstWin(), nil
	case domain.LastWin:
		return NewLastWin(), nil
	case domain.Priority:
		return NewPriority(), nil
	}
	return nil, domain.Errorf(domain.EINVALID, "no deterministic strategy %q: want FIRST_WIN, LAST_WIN or PRIORITY", s)
}

// Strategy implements domain.Resolver.
func (o *Ordered) Strategy() domain.Strategy { return o.strategy }

// Preference is the order in which the deterministic strategies try actions,
// per kind of claim, once the winner is known:
//   - service: share an interchangeable instance; otherwise rename the loser
//     (both run), unless the loser is optional, when it is dropped instead of
//     duplicated; drop is the last resort.
//   - volume: rename, so two sources never write the same data by accident.
//   - port: remap the loser's host port to a free one; drop if none is left.
//   - env, file: the winner's value is kept.
//   - cpu, memory, disk: allocate.
var Preference = map[domain.ClaimKind][]domain.Action{
	domain.ServiceClaim: {domain.Share, domain.Rename, domain.Drop},
	domain.VolumeClaim:  {domain.Rename, domain.Share},
	domain.PortClaim:    {domain.Remap, domain.Drop},
	domain.EnvClaim:     {domain.Keep, domain.Merge},
	domain.FileClaim:    {domain.Keep},
	domain.CPUClaim:     {domain.Allocate},
	domain.MemoryClaim:  {domain.Allocate},
	domain.DiskClaim:    {domain.Allocate},
}

// Resolve implements domain.Resolver.
func (o *Ordered) Resolve(ctx context.Context, m *domain.Manifest, decisions []domain.Decision) ([]domain.Choice, error) {
	sources := map[domain.SourceRef]domain.Source{}
	for _, s := range m.Sources {
		sources[s.Ref()] = s
	}
	out := make([]domain.Choice, len(decisions))
	for i, d := range decisions {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ch, err := o.choose(sources, d)
		if err != nil {
			return nil, err
		}
		out[i] = ch
	}
	return out, nil
}

func (o *Ordered) choose(sources map[domain.SourceRef]domain.Source, d domain.Decision) (domain.Choice, error) {
	var winner *domain.Source
	for _, cl := range d.Conflict.Claimants {
		s, ok := sources[cl.Source]
		if !ok {
			return domain.Choice{}, fmt.Errorf("%s: claimant %s is not a manifest source", d.Conflict.Key, cl.Source)
		}
		if winner == nil || o.better(s, *winner) {
			winner = &s
		}
	}
	prefs := Preference[d.Conflict.Kind]
	if d.Conflict.Kind == domain.ServiceClaim && o.losersOptional(d, winner) {
		prefs = []domain.Action{domain.Share, domain.Drop, domain.Rename}
	}
	for _, action := range prefs {
		for i, c := range d.Candidates {
			r := c.Resolution
			if c.Rejected != "" || r.Action != action {
				continue
			}
			if r.Winner == nil {
				return domain.Choice{Candidate: i}, nil
			}
			if winner != nil && *r.Winner == winner.Ref() {
				return domain.Choice{Candidate: i, Reason: o.why(*winner)}, nil
			}
		}
	}
	return domain.Choice{}, fmt.Errorf("%s: %s found no valid candidate among %d", d.Conflict.Key, o.strategy, len(d.Candidates))
}

// losersOptional reports whether every claimant that does not win is optional.
func (o *Ordered) losersOptional(d domain.Decision, winner *domain.Source) bool {
	any := false
	for _, cl := range d.Conflict.Claimants {
		if winner != nil && cl.Source == winner.Ref() {
			continue
		}
		if !cl.Optional {
			return false
		}
		any = true
	}
	return any
}
