package domain

import (
	"context"
	"time"
)

// Plan is the explained result of a composition: what runs, what it gets,
// every conflict and how it was settled, and what was left out. Its JSON form
// is a contract (plan.schema.json); the same input gives the same bytes.
type Plan struct {
	Name     string   `json:"name"`
	Strategy Strategy `json:"strategy"`
	// ModelVersion names the model that scored AI_AGENT's candidates when
	// the server knows it (the registry's version, or file:PATH); empty
	// otherwise.
	ModelVersion string        `json:"model_version,omitempty"`
	Feasible     bool          `json:"feasible"`
	Sources      []PlanSource  `json:"sources"`
	Services     []PlanService `json:"services"`
	Volumes      []PlanVolume  `json:"volumes"`
	Files        []PlanFile    `json:"files"`
	Env          []PlanEnv     `json:"env"`
	Conflicts    []Conflict    `json:"conflicts"`
	Limits       Resources     `json:"limits"`
	// Totals is what the services get in all: their allocations.
	Totals Resources `json:"totals"`
	// Requested is what they ask for in all, Minimums the least they accept.
	Requested Resources `json:"requested"`
	Minimums  Resources `json:"minimums"`
	Dropped   []Dropped `json:"dropped"`
	// Concessions lists what providers were asked when the minimums did
	// not fit, and what they answered.
	Concessions []Concession `json:"concessions"`
	// Allocator says how the allocations were found; nil when they could
	// not be (the plan is then infeasible).
	Allocator *AllocatorReport `json:"allocator,omitempty"`
}

// PlanSource summarises what one source contributes.
type PlanSource struct {
	Ref      SourceRef `json:"ref"`
	Type     string    `json:"type"`
	Priority int       `json:"priority"`
	Tags     []string  `json:"tags"`
	Services int       `json:"services"`
	Env      int       `json:"env"`
	Files    int       `json:"files"`
}

// PlanService is a service of the composed environment.
type PlanService struct {
	Name        string      `json:"name"`
	Source      SourceRef   `json:"source"`
	RenamedFrom string      `json:"renamed_from,omitempty"`
	SharedWith  []SourceRef `json:"shared_with,omitempty"`
	Image       string      `json:"image"`
	Ports       []Port      `json:"ports"`
	DependsOn   []string    `json:"depends_on"`
	Volumes     []string    `json:"volumes"`
	Optional    bool        `json:"optional"`
	// LatencySensitive: others wait on it in their request path.
	LatencySensitive bool      `json:"latency_sensitive,omitempty"`
	Requested        Resources `json:"requested"`
	Minimum          Resources `json:"minimum"`
	Allocation       Resources `json:"allocation"`
	// Reads lists the environment-wide keys the service is known to read
	// ("env:NAME", "file:/path").
	Reads []string `json:"reads,omitempty"`
	// AtMinimum names the resources of which the service gets only its minimum.
	AtMinimum []string `json:"at_minimum,omitempty"`
	// Weight is the value the allocator gave the service's resources.
	Weight float64 `json:"weight"`
}

// PlanVolume is a named volume of the composed environment.
type PlanVolume struct {
	Name        string    `json:"name"`
	Source      SourceRef `json:"source"`
	RenamedFrom string    `json:"renamed_from,omitempty"`
}

// PlanFile is a file placed in the environment.
type PlanFile struct {
	Path   string    `json:"path"`
	Source SourceRef `json:"source"`
	Digest string    `json:"digest"`
	Size   int64     `json:"size"`
}

// PlanEnv is an environment-wide variable. A secret carries Digest instead of Value.
type PlanEnv struct {
	Name   string    `json:"name"`
	Source SourceRef `json:"source"`
	Value  *string   `json:"value,omitempty"`
	Digest string    `json:"digest,omitempty"`
}

// Dropped is a service left out of the composition, and why.
type Dropped struct {
	Name   string    `json:"name"`
	Source SourceRef `json:"source"`
	Reason string    `json:"reason"`
}

// Candidate is one way to settle a conflict. Rejected, when set, says why it
// may not be chosen (it would leave a dangling dependency, collide anew, ...).
type Candidate struct {
	Resolution Resolution
	Rejected   string
	// Overfills says why, after this candidate, the firm minimums of the
	// required services could not fit the limits while another candidate
	// of the decision leaves them fitting; "" when they fit. The
	// deterministic strategies ignore it (the allocator then reports what
	// does not fit); AI_AGENT does not score such a candidate.
	Overfills string
}

// Decision is a conflict waiting for a resolver, with every candidate.
type Decision struct {
	Conflict   Conflict
	Candidates []Candidate
	// Context describes the composition as it stood when the decision's
	// round was made; the decisions of one round share it. Nil when the
	// maker of the decision knows nothing more.
	Context *DecisionContext
}

// DecisionContext is what a resolver may know of the composition beyond the
// conflicts themselves: every service still in it, and when each source was
// captured.
type DecisionContext struct {
	// Services holds every service of the composition, in manifest order
	// and then in their snapshot's order.
	Services []ServiceFacts
	// Requested totals what the services ask for.
	Requested Resources
	// CapturedAt says when each live source was captured.
	CapturedAt map[SourceRef]time.Time
	// Conflicts counts the conflicts of the round.
	Conflicts int

	index map[serviceKey]int
}

type serviceKey struct {
	source SourceRef
	name   string
}

// NewDecisionContext returns the context of services, indexed for Service.
func NewDecisionContext(services []ServiceFacts, capturedAt map[SourceRef]time.Time, conflicts int) *DecisionContext {
	c := &DecisionContext{Services: services, CapturedAt: capturedAt, Conflicts: conflicts, index: make(map[serviceKey]int, len(services))}
	for i, s := range services {
		c.Requested = c.Requested.Add(s.Requested)
		if _, dup := c.index[serviceKey{s.Source, s.Name}]; !dup {
			c.index[serviceKey{s.Source, s.Name}] = i
		}
	}
	return c
}

// ServiceFacts describes one service of a composition.
type ServiceFacts struct {
	Source           SourceRef
	Name             string
	Optional         bool
	LatencySensitive bool
	// Dependents counts the services that need it, directly or not.
	Dependents int
	Requested  Resources
	Minimum    Resources
}

// Service returns the facts of the service source holds under name.
func (c *DecisionContext) Service(source SourceRef, name string) (ServiceFacts, bool) {
	if c == nil {
		return ServiceFacts{}, false
	}
	if c.index != nil {
		i, ok := c.index[serviceKey{source, name}]
		if !ok {
			return ServiceFacts{}, false
		}
		return c.Services[i], true
	}
	for _, s := range c.Services {
		if s.Source == source && s.Name == name {
			return s, true
		}
	}
	return ServiceFacts{}, false
}

// Choice is a resolver's answer to one Decision.
type Choice struct {
	Candidate int       // index into Decision.Candidates; must not be a rejected one
	Reason    string    // why, in words, for the plan: "FIRST_WIN: template:a is listed first"
	Scores    []float64 // one per candidate when the resolver scores them; nil otherwise
	// Margin is the chosen score less the best valid alternative's, when
	// scored and there is an alternative; Ambiguous marks a margin too
	// small to trust without a person's look.
	Margin    *float64
	Ambiguous bool
}

// Resolver settles conflicts. Conflicts are handed over a round at a time
// (all of one kind), so a resolver can choose them jointly.
//
// Resolve returns one Choice per decision. It returns EINVALID when the
// manifest asks for something the resolver cannot do, and EINTERNAL (or an
// uncoded error) when it fails.
type Resolver interface {
	Strategy() Strategy
	Resolve(ctx context.Context, m *Manifest, decisions []Decision) ([]Choice, error)
}

// Offer is what a provider will accept for one of its services when the
// composition does not fit: a lower minimum, and why.
type Offer struct {
	Service string    // as the source names it
	Minimum Resources // the least it will run on now
	Basis   string    // how the provider arrived at it, in words
}

// Negotiator is implemented by a SnapshotSource whose provider can concede:
// asked for the services of src it still contributes, it answers with an
// offer for those it can run on less. A provider with nothing to concede
// returns no offers and no error. Errors name the source and are reported in
// the plan, never fatal: a provider that cannot be asked concedes nothing.
type Negotiator interface {
	Concede(ctx context.Context, src Source, services []string) ([]Offer, error)
}

// Concession records one provider's answer when the composition was over a
// limit at its minimums: Granted when the service's minimum came down from
// From to To.
type Concession struct {
	Service string    `json:"service"`
	Source  SourceRef `json:"source"`
	Granted bool      `json:"granted"`
	From    Resources `json:"from"`
	To      Resources `json:"to"`
	Reason  string    `json:"reason"`
}

// AllocatorReport says how the allocation was found and what limited it.
type AllocatorReport struct {
	Method    string  `json:"method"`    // knapsack, decomposition or simplex
	Objective float64 `json:"objective"` // total value above the minimums
	// Limits has one entry per resource, in the order cpu, memory, disk.
	Limits []LimitReport `json:"limits"`
}

// LimitReport describes one resource limit at the optimum.
type LimitReport struct {
	Resource string `json:"resource"` // cpu, memory or disk
	Limit    int64  `json:"limit"`
	Used     int64  `json:"used"`
	Binding  bool   `json:"binding"`
	// ShadowPrice is the value one more base unit (millicore, byte) of the
	// limit would add; 0 when it does not bind.
	ShadowPrice float64 `json:"shadow_price"`
}

// ShadowPerUnit returns the shadow price per unit a person reads — per core
// for cpu, per GiB otherwise — and that unit's name.
func (l LimitReport) ShadowPerUnit() (float64, string) {
	if l.Resource == "cpu" {
		return l.ShadowPrice * 1000, "core"
	}
	return l.ShadowPrice * (1 << 30), "GiB of " + l.Resource
}
