package domain

import "time"

// CompositionStatus is where a composition is in its life.
type CompositionStatus string

const (
	StatusPending      CompositionStatus = "pending"      // accepted, not started
	StatusRunning      CompositionStatus = "running"      // retrieving and settling conflicts
	StatusPlanned      CompositionStatus = "planned"      // the plan is made
	StatusProvisioning CompositionStatus = "provisioning" // reserving capacity
	StatusProvisioned  CompositionStatus = "provisioned"  // capacity reserved
	StatusInstantiated CompositionStatus = "instantiated" // the environment is materialised
	StatusSucceeded    CompositionStatus = "succeeded"
	StatusFailed       CompositionStatus = "failed"
	StatusCancelled    CompositionStatus = "cancelled"
)

// Final reports whether a composition in status s is done for good.
func (s CompositionStatus) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// PlanRecord is everything a composition decided, handed to the history in
// one piece so it is kept whole or not at all.
type PlanRecord struct {
	Plan *Plan
	// Snapshots holds what each manifest source contributed, in manifest
	// order, as retrieved (before any conflict was settled).
	Snapshots []*Snapshot
	// CapturedAt says when each snapshot was taken, parallel to Snapshots;
	// nil, or a zero time, means "when the plan is recorded".
	CapturedAt []time.Time
	// Claims are the claims the analysis looked at, of every kind.
	Claims []Claim
	// Decisions are every conflict with its candidates, in the order they
	// were settled: Decisions[i] is Plan.Conflicts[i].
	Decisions []Decision
	// Choices[i] is the resolver's answer to Decisions[i].
	Choices []Choice
	// Features[i][j] is the feature vector of candidate j of Decisions[i],
	// when the resolver scored with a model; nil otherwise.
	Features [][][]float32
	// FeatureSchema identifies the feature layout (its hash), set when
	// Features is.
	FeatureSchema string
	// ModelVersion is the version of the model that scored the candidates,
	// or "" when no model took part.
	ModelVersion string
}
