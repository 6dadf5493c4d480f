package domain

// ClaimKind is what a claim is on.
type ClaimKind string

const (
	ServiceClaim ClaimKind = "service"
	PortClaim    ClaimKind = "port"
	EnvClaim     ClaimKind = "env"
	FileClaim    ClaimKind = "file"
	VolumeClaim  ClaimKind = "volume"
	CPUClaim     ClaimKind = "cpu"
	MemoryClaim  ClaimKind = "memory"
	DiskClaim    ClaimKind = "disk"
)

// Compute reports whether k is a demand for cpu, memory or disk, settled
// by allocation rather than by a winner.
func (k ClaimKind) Compute() bool { return k == CPUClaim || k == MemoryClaim || k == DiskClaim }

// ClaimKinds lists the kinds in the order conflicts are settled: services
// first, since a rename or a drop changes which ports, volumes and files are
// still claimed; compute last, since it depends on what is left.
var ClaimKinds = []ClaimKind{ServiceClaim, VolumeClaim, PortClaim, EnvClaim, FileClaim, CPUClaim, MemoryClaim, DiskClaim}

// Claim is one snapshot's claim on a key such as "port:tcp/8080".
type Claim struct {
	Kind    ClaimKind
	Key     string
	Source  SourceRef
	Owner   string // the service that holds it, or "" for environment-wide claims
	Content string // digest of what is claimed; equal content never conflicts
}

// Claimant is a source (and the service in it) that holds a contested key.
type Claimant struct {
	Source SourceRef `json:"source"`
	Owner  string    `json:"owner,omitempty"`
	// Optional marks an owner the environment can do without
	// (x-snapcompose optional); strategies drop such a loser rather than
	// duplicate it.
	Optional bool `json:"optional,omitempty"`
}

// Action is what a resolution does.
type Action string

const (
	Keep     Action = "keep"     // one claimant wins; the others' claims are discarded
	Remap    Action = "remap"    // a losing service's host port moves to a free one
	Rename   Action = "rename"   // a losing service is renamed, references rewritten
	Share    Action = "share"    // interchangeable services become one instance
	Merge    Action = "merge"    // list-like values are joined
	Drop     Action = "drop"     // a losing service is dropped, and its dependents with it
	Allocate Action = "allocate" // compute demand settled by negotiation and allocation
)

// Conflict is a key that two or more claimants hold with different content,
// or a compute demand over a limit.
type Conflict struct {
	Kind       ClaimKind   `json:"kind"`
	Key        string      `json:"key"`
	Claimants  []Claimant  `json:"claimants"`
	Resolution *Resolution `json:"resolution"`
}

// Resolution settles a conflict. Changes say exactly what it does to the
// composition; Detail says it in words, for the plan.
type Resolution struct {
	Action       Action        `json:"action"`
	Winner       *SourceRef    `json:"winner"`
	Detail       string        `json:"detail"`
	Score        *float64      `json:"score,omitempty"`
	Alternatives []Alternative `json:"alternatives,omitempty"`
	// Margin is Score less the best alternative's score.
	Margin    *float64 `json:"margin,omitempty"`
	Ambiguous bool     `json:"ambiguous,omitempty"`
	Changes   []Change `json:"changes,omitempty"`
}

// Alternative is a candidate resolution that was not chosen.
type Alternative struct {
	Action Action     `json:"action"`
	Winner *SourceRef `json:"winner"`
	Detail string     `json:"detail"`
	Score  *float64   `json:"score,omitempty"`
}

// ChangeOp is one elementary edit of a composition.
type ChangeOp string

const (
	OpRenameService ChangeOp = "rename_service" // Service in Source becomes To
	OpRemapPort     ChangeOp = "remap_port"     // Service's host port From becomes To
	OpDropService   ChangeOp = "drop_service"   // Service leaves the composition, dependents too
	OpShareService  ChangeOp = "share_service"  // Source's Service is served by the winner's
	OpRenameVolume  ChangeOp = "rename_volume"  // Volume in Source becomes To, mounts rewritten
	OpShareVolume   ChangeOp = "share_volume"   // Source's Volume is the winner's
	OpDiscardEnv    ChangeOp = "discard_env"    // Source's variable yields to the winner's
	OpDiscardFile   ChangeOp = "discard_file"   // Source's file yields to the winner's
	OpMergeEnv      ChangeOp = "merge_env"      // Source's variable Name takes the merged value To
)

// Change is one elementary edit a resolution makes.
type Change struct {
	Op       ChangeOp  `json:"op"`
	Source   SourceRef `json:"source"`
	Service  string    `json:"service,omitempty"`
	Name     string    `json:"name,omitempty"` // volume, variable or file path
	Protocol string    `json:"protocol,omitempty"`
	From     int       `json:"from,omitempty"`
	To       string    `json:"to,omitempty"`
	ToPort   int       `json:"to_port,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}
