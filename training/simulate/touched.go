package simulate

import (
	"slices"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// ServiceRef is a service of a composed environment, its source, and the
// environment-wide keys it is known to read (domain.Service.Reads).
type ServiceRef struct {
	Name   string
	Source domain.SourceRef
	Reads  []string
}

// Touched returns the services of env a settled conflict on key bears on:
// for a claimant that is a service (a name, a port), that service, under
// its name or under the name a rename gave it (name-…); for an
// environment-wide claimant (a variable, a file), the services of its
// source that read key — or every service of the source when none of them
// is known to. This is how a failure seen by the monitor is pinned on the
// decisions: the simulator breaks the services a failed decision touches,
// and the trainer labels a decision by the health of the services it
// touches.
func Touched(key string, claimants []domain.Claimant, env []ServiceRef) []int {
	var out []int
	readers := map[domain.SourceRef]bool{}
	for _, s := range env {
		if slices.Contains(s.Reads, key) {
			readers[s.Source] = true
		}
	}
	for i, s := range env {
		for _, c := range claimants {
			if c.Source != s.Source {
				continue
			}
			if c.Owner == "" && (!readers[s.Source] || slices.Contains(s.Reads, key)) ||
				c.Owner != "" && (s.Name == c.Owner || strings.HasPrefix(s.Name, c.Owner+"-")) {
				out = append(out, i)
				break
			}
		}
	}
	return out
}
