// Package agentapi is the snapagent HTTP protocol, shared by the agent
// (cmd/snapagent) and the live source that calls it. It imports only the
// standard library, so the agent stays small and static.
//
// Endpoints (all but /healthz need "Authorization: Bearer <token>"):
//
//	GET  /healthz                 liveness, no token
//	POST /v1/capture              body CaptureRequest -> Capture
//	GET  /v1/recommend?path=P     -> []Recommendation for the services under P
//	GET  /v1/blobs/{digest}       -> the bytes of a captured file with that digest
//
// Errors come back as an Error body with a 4xx/5xx status.
package agentapi

import "time"

// CaptureRequest asks for a capture of Path, which must lie under one of the
// roots the agent was started with.
type CaptureRequest struct {
	Path string `json:"path"`
}

// Capture is what an agent saw under a path at one moment.
type Capture struct {
	Host            string           `json:"host"` // the agent's hostname
	Path            string           `json:"path"` // absolute, cleaned
	Root            string           `json:"root"` // the configured root it lies under
	CapturedAt      time.Time        `json:"captured_at"`
	Files           []File           `json:"files"`
	Ports           []Port           `json:"ports"`
	Processes       []Process        `json:"processes"`
	Usage           []UsageSeries    `json:"usage"`
	Recommendations []Recommendation `json:"recommendations"`
	Stats           CaptureStats     `json:"stats"`
}

// File is one regular file under the captured path.
type File struct {
	Path    string    `json:"path"` // absolute
	Size    int64     `json:"size"`
	Mode    uint32    `json:"mode"` // permission bits
	Digest  string    `json:"digest"`
	ModTime time.Time `json:"mod_time"`
}

// Port is a listening socket owned by a captured process.
type Port struct {
	Protocol string `json:"protocol"` // "tcp" or "udp"
	Address  string `json:"address"`  // the local address it is bound to
	Port     int    `json:"port"`
	PID      int    `json:"pid"`
	Service  string `json:"service"`
}

// Process is a process running from under the captured path (or named in
// the agent's configuration), grouped into a service.
type Process struct {
	PID           int      `json:"pid"`
	Service       string   `json:"service"` // a Compose-safe name for the group it belongs to
	Name          string   `json:"name"`
	Exe           string   `json:"exe"`
	Cwd           string   `json:"cwd"`
	Cmdline       []string `json:"cmdline"`
	CPUMillicores int64    `json:"cpu_millicores"` // recent use
	MemoryBytes   int64    `json:"memory_bytes"`   // resident (or its cgroup's current use)
	Env           []EnvVar `json:"env"`
}

// EnvVar is a process environment variable. A secret-looking name carries
// only the Digest of its value, never the value.
type EnvVar struct {
	Name   string  `json:"name"`
	Value  *string `json:"value,omitempty"`
	Digest string  `json:"digest,omitempty"`
}

// UsageSeries is the sampled use of one service.
type UsageSeries struct {
	Service         string        `json:"service"`
	IntervalSeconds float64       `json:"interval_seconds"`
	Samples         []UsageSample `json:"samples"`
}

// UsageSample is one sample of a service's use, summed over its processes.
type UsageSample struct {
	At            time.Time `json:"at"`
	CPUMillicores int64     `json:"cpu_millicores"`
	MemoryBytes   int64     `json:"memory_bytes"`
}

// Recommendation is the least and the most a service should get, from its
// usage history: a percentile of use plus a margin.
type Recommendation struct {
	Service              string `json:"service"`
	MinCPUMillicores     int64  `json:"min_cpu_millicores"`
	DesiredCPUMillicores int64  `json:"desired_cpu_millicores"`
	MinMemoryBytes       int64  `json:"min_memory_bytes"`
	DesiredMemoryBytes   int64  `json:"desired_memory_bytes"`
	Samples              int    `json:"samples"`
	Basis                string `json:"basis"` // how it was computed, in words
}

// CaptureStats says what a capture cost.
type CaptureStats struct {
	Files          int   `json:"files"`
	Bytes          int64 `json:"bytes"`
	ReusedDigests  int   `json:"reused_digests"` // files unchanged since the last capture
	DurationMillis int64 `json:"duration_ms"`
	// Skipped counts the entries under the path that are not in Files:
	// symlinks, fifos, sockets, devices, unreadable files... SkippedByKind
	// says how many of each kind.
	Skipped       int            `json:"skipped"`
	SkippedByKind map[string]int `json:"skipped_by_kind,omitempty"`
}

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"` // a domain error code: invalid, not_found, unavailable, ...
	Message string `json:"message"`
}

// UsageReport is what an agent pushes to snapcompose for one service of a
// composition it watches (POST /v1/compositions/{id}/usage).
type UsageReport struct {
	Service         string        `json:"service"`
	Host            string        `json:"host,omitempty"`
	IntervalSeconds int           `json:"interval_seconds"`
	Samples         []UsageSample `json:"samples"`
}
