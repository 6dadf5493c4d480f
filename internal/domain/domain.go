// Package domain holds the types every part of snapcompose shares — the
// manifest, snapshots and their claims, conflicts and resolutions, the plan —
// and the interfaces the orchestrator sees the rest of the system through.
// It imports only the standard library; a test keeps it that way.
package domain

import (
	"context"
	"fmt"
)

// Strategy names how conflicts are resolved.
type Strategy string

const (
	FirstWin Strategy = "FIRST_WIN" // the earliest source in manifest order wins
	LastWin  Strategy = "LAST_WIN"  // the latest source in manifest order wins
	Priority Strategy = "PRIORITY"  // the highest priority wins, ties by manifest order
	AIAgent  Strategy = "AI_AGENT"  // a learned model scores candidate resolutions
)

// Strategies lists every strategy in the order documentation shows them.
var Strategies = []Strategy{AIAgent, LastWin, FirstWin, Priority}

// SourceType is the kind of a snapshot source.
type SourceType string

const (
	TemplateSource SourceType = "template"
	LiveSource     SourceType = "live"
)

// SourceRef names a source in output: "template:<id>" or "live:<host>:<path>".
type SourceRef string

// Resources is an amount of compute: a limit, a demand or an allocation.
type Resources struct {
	CPUMillicores int64 `json:"cpu_millicores"`
	MemoryBytes   int64 `json:"memory_bytes"`
	DiskBytes     int64 `json:"disk_bytes"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.CPUMillicores + o.CPUMillicores, r.MemoryBytes + o.MemoryBytes, r.DiskBytes + o.DiskBytes}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.CPUMillicores - o.CPUMillicores, r.MemoryBytes - o.MemoryBytes, r.DiskBytes - o.DiskBytes}
}

// Manifest is a validated composition request.
type Manifest struct {
	Name               string
	Description        string
	Sources            []Source
	ConflictResolution Strategy
	ResourceLimits     Resources
}

// Source is one entry of a manifest's sources list.
type Source struct {
	Type     SourceType
	ID       string // template id
	Host     string // live host, as named in the hosts file
	Path     string // live path on that host
	Priority int
	Tags     []string
	Index    int // position in the manifest; FIRST_WIN and LAST_WIN order by it
}

// Ref returns the name the source goes by in plans and logs.
func (s Source) Ref() SourceRef {
	if s.Type == LiveSource {
		return SourceRef(fmt.Sprintf("live:%s:%s", s.Host, s.Path))
	}
	return SourceRef("template:" + s.ID)
}

// SnapshotSource retrieves the snapshot a manifest source names.
//
// Retrieve returns ENOTFOUND when the source does not exist (an unknown
// template id, an unknown host), EINVALID when what it finds is malformed (the
// error names the file and field), and EUNAVAILABLE when it cannot be reached.
type SnapshotSource interface {
	Retrieve(ctx context.Context, src Source) (*Snapshot, error)
}
