package simulate

import (
	"fmt"
	"math/rand/v2"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
)

// Behaviour is the mix of policies whose choices the simulated history
// records: mostly an exploring agent, so that every kind of candidate is
// tried, and some compositions under each deterministic strategy.
var Behaviour = []struct {
	Share  float64
	Policy Policy
}{
	{0.70, nil}, // Random, seeded from the simulator
	{0.10, Baseline{domain.FirstWin}},
	{0.10, Baseline{domain.LastWin}},
	{0.10, Baseline{domain.Priority}},
}

// History is the sources' track record as compositions accumulate.
type History map[domain.SourceRef]features.SourceHistory

// Clone returns a copy.
func (h History) Clone() History {
	out := make(History, len(h))
	for k, v := range h {
		out[k] = v
	}
	return out
}

// add records one composition's outcome against each of its sources.
func (h History) add(m *domain.Manifest, healthy bool) {
	for _, s := range m.Sources {
		x := h[s.Ref()]
		x.Compositions++
		if healthy {
			x.Healthy++
		}
		h[s.Ref()] = x
	}
}

// Generate settles compositions 0..n-1 in order under the behaviour mix,
// each with the history its predecessors left, and calls each with the run
// and the history it was settled with. It stops at the first error.
func (s *Simulator) Generate(n int, each func(run *Run, before History) error) error {
	h := History{}
	for i := range n {
		w := s.World(i)
		rng := rand.New(rand.NewPCG(s.seed, uint64(i)<<16|0xbe))
		x, policy := rng.Float64(), Policy(Random{Seed: s.seed})
		for _, b := range Behaviour {
			if x < b.Share {
				if b.Policy != nil {
					policy = b.Policy
				}
				break
			}
			x -= b.Share
		}
		before := h.Clone()
		run, err := w.Settle(policy, before)
		if err != nil {
			return err
		}
		if err := each(run, before); err != nil {
			return fmt.Errorf("composition %d: %w", i, err)
		}
		h.add(w.Manifest, run.Healthy)
	}
	return nil
}
