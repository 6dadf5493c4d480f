package simulate

import (
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// ServiceRef is a service of a composed environment and its source.
type ServiceRef struct {
	Name   string
	Source domain.SourceRef
}

// Touched returns the services of env a settled conflict bears on: for a
// claimant that is a service (a name, a port), that service, under its
// name or under the name a rename gave it (name-…); for an
// environment-wide claimant (a variable, a file), every service of its
// source. This is how a failure seen by the monitor is pinned on the
// decisions: the simulator breaks the services a failed decision touches,
// and the trainer labels a decision by the health of the services it
// touches.
func Touched(claimants []domain.Claimant, env []ServiceRef) []int {
	var out []int
	for i, s := range env {
		for _, c := range claimants {
			if c.Source != s.Source {
				continue
			}
			if c.Owner == "" || s.Name == c.Owner || strings.HasPrefix(s.Name, c.Owner+"-") {
				out = append(out, i)
				break
			}
		}
	}
	return out
}
