package composer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// listSeparator says whether every value of a variable is a list, and of
// what: ':' for search paths (a name ending in PATH or PATHS: PATH,
// PYTHONPATH, LD_LIBRARY_PATH), ',' for a name that says it holds several
// (…FLAGS, …FEATURES, …HOSTS, …ORIGINS, …LIST, …SERVERS, …BROKERS) or
// values that all hold a comma. Anything else is one value, never merged.
func listSeparator(name string, values []string) (string, bool) {
	upper := strings.ToUpper(name)
	if strings.HasSuffix(upper, "PATH") || strings.HasSuffix(upper, "PATHS") {
		return ":", true
	}
	for _, s := range []string{"FLAGS", "FEATURES", "HOSTS", "ORIGINS", "LIST", "SERVERS", "BROKERS"} {
		if strings.HasSuffix(upper, s) {
			return ",", true
		}
	}
	for _, v := range values {
		if !strings.Contains(v, ",") {
			return "", false
		}
	}
	return ",", len(values) > 0
}

// mergeCandidate is the merge of a variable whose values are lists: the
// first claimant keeps the variable with every claimant's items, in
// claimant order, each once. It is rejected for a secret, whose values are
// known only by digest. ok is false when the values are not lists.
func (c *Composition) mergeCandidate(g []claim) (domain.Candidate, bool) {
	name := keyName(g[0].Key)
	var values []string
	secret := domain.IsSecretName(name)
	for _, x := range g {
		v := c.envVar(x.snap, name)
		if v == nil || v.Value == "" && v.Digest != "" {
			secret = true
			continue
		}
		values = append(values, v.Value)
	}
	sep, ok := listSeparator(name, values)
	if !ok {
		return domain.Candidate{}, false
	}
	first := g[0]
	winner := first.Source
	res := domain.Resolution{Action: domain.Merge, Winner: &winner}
	if secret {
		res.Detail = fmt.Sprintf("merge the lists in %s", name)
		return domain.Candidate{Resolution: res, Rejected: fmt.Sprintf("%s is a secret: its values are known only by digest, so they cannot be merged", name)}, true
	}
	var items []string
	for _, v := range values {
		for _, it := range strings.Split(v, sep) {
			if it = strings.TrimSpace(it); it != "" && !slices.Contains(items, it) {
				items = append(items, it)
			}
		}
	}
	merged := strings.Join(items, sep)
	var refs []string
	for _, x := range g[1:] {
		if x.snap != first.snap {
			res.Changes = append(res.Changes, domain.Change{Op: domain.OpDiscardEnv, Source: x.Source, Name: name})
			refs = append(refs, string(x.Source))
		}
	}
	res.Changes = append(res.Changes, domain.Change{Op: domain.OpMergeEnv, Source: first.Source, Name: name, To: merged})
	res.Detail = fmt.Sprintf("%s keeps %s with every source's items: %q (from %s and %s)", winner, name, merged, winner, strings.Join(refs, ", "))
	return domain.Candidate{Resolution: res}, true
}

// envVar returns snapshot snap's variable name, or nil.
func (c *Composition) envVar(snap int, name string) *domain.EnvVar {
	env := c.snaps[snap].Env
	for i := range env {
		if env[i].Name == name {
			return &env[i]
		}
	}
	return nil
}
