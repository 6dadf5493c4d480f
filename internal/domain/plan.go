package domain

import "context"

// Plan is the explained result of a composition: what runs, what it gets,
// every conflict and how it was settled, and what was left out. Its JSON form
// is a contract (plan.schema.json); the same input gives the same bytes.
type Plan struct {
	Name      string        `json:"name"`
	Strategy  Strategy      `json:"strategy"`
	Feasible  bool          `json:"feasible"`
	Sources   []PlanSource  `json:"sources"`
	Services  []PlanService `json:"services"`
	Volumes   []PlanVolume  `json:"volumes"`
	Files     []PlanFile    `json:"files"`
	Env       []PlanEnv     `json:"env"`
	Conflicts []Conflict    `json:"conflicts"`
	Limits    Resources     `json:"limits"`
	Totals    Resources     `json:"totals"`
	Minimums  Resources     `json:"minimums"`
	Dropped   []Dropped     `json:"dropped"`
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
	Requested   Resources   `json:"requested"`
	Minimum     Resources   `json:"minimum"`
	Allocation  Resources   `json:"allocation"`
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
}

// Decision is a conflict waiting for a resolver, with every candidate.
type Decision struct {
	Conflict   Conflict
	Candidates []Candidate
}

// Choice is a resolver's answer to one Decision.
type Choice struct {
	Candidate int       // index into Decision.Candidates; must not be a rejected one
	Reason    string    // why, in words, for the plan: "FIRST_WIN: template:a is listed first"
	Scores    []float64 // one per candidate when the resolver scores them; nil otherwise
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
