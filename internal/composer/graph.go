package composer

import (
	"fmt"
	"sort"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Graph is the dependency graph of a composition: an edge from a service to
// each service it needs (depends_on, links, volumes_from, network_mode) and to
// each named volume it mounts. Volumes are nodes named "volume:<name>".
type Graph struct {
	edges map[string][]string
	nodes []string
}

// Graph returns the dependency graph of the composition as it stands. It
// returns EINVALID when a service needs one that is not in the composition.
func (c *Composition) Graph() (*Graph, error) {
	g := &Graph{edges: map[string][]string{}}
	for si, s := range c.snaps {
		for _, svc := range s.Services {
			g.nodes = append(g.nodes, svc.Name)
			for _, dep := range svc.DependsOn {
				target, ok := c.resolve(si, dep)
				if !ok {
					return nil, domain.Errorf(domain.EINVALID, "service %s (%s) depends on %s, which is not in the composition", svc.Name, s.Source.Ref(), dep)
				}
				g.edges[svc.Name] = append(g.edges[svc.Name], target.name)
			}
			for _, v := range svc.Volumes {
				g.edges[svc.Name] = append(g.edges[svc.Name], "volume:"+v)
			}
		}
	}
	sort.Strings(g.nodes)
	for n := range g.edges {
		sort.Strings(g.edges[n])
	}
	return g, nil
}

// Needs returns what node needs directly, sorted.
func (g *Graph) Needs(node string) []string { return g.edges[node] }

// Cycle returns one dependency cycle as a path that starts and ends at the
// same service, or nil if there is none. The search is deterministic.
func (g *Graph) Cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range g.edges[n] {
			switch color[m] {
			case grey:
				for i, s := range stack {
					if s == m {
						found = append(append([]string(nil), stack[i:]...), m)
						return true
					}
				}
			case white:
				if visit(m) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range g.nodes {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

// CheckCycles returns EINVALID naming the cycle if the graph has one.
func (g *Graph) CheckCycles() error {
	if cycle := g.Cycle(); cycle != nil {
		return domain.Errorf(domain.EINVALID, "dependency cycle: %s", strings.Join(cycle, " -> "))
	}
	return nil
}

// String lists the graph's edges, one node a line, for debugging and tests.
func (g *Graph) String() string {
	var b strings.Builder
	for _, n := range g.nodes {
		fmt.Fprintf(&b, "%s -> [%s]\n", n, strings.Join(g.edges[n], " "))
	}
	return b.String()
}
