// Package usage holds resource usage histories — what a host's or a
// service's CPU, memory, disk and network really did over time — and reads
// them from outside traces (the Bitbrains VM trace). It imports only the
// standard library and the domain package; the store keeps what it reads.
package usage

import "time"

// Origin says where a usage series comes from.
type Origin string

const (
	OriginBitbrains Origin = "bitbrains" // the GWA-T-12 Bitbrains trace, via `snapcompose import usage`
	OriginSnapagent Origin = "snapagent" // captured from a live host by snapagent
	OriginReport    Origin = "report"    // reported back by a composed environment
)

// Valid reports whether o is one of the origins the schema accepts.
func (o Origin) Valid() bool {
	switch o {
	case OriginBitbrains, OriginSnapagent, OriginReport:
		return true
	}
	return false
}

// Series is the usage history of one service on one host, from one origin.
// (Origin, Host, Service) identifies it.
type Series struct {
	ID      int64
	Origin  Origin
	Host    string
	Service string
	// CompositionID is the UUID of the composition the service belongs to,
	// or "" when it belongs to none (a trace VM, a captured host).
	CompositionID   string
	IntervalSeconds int
	// CPUProvisionedMillicores and MemoryProvisionedBytes are the largest
	// capacity any sample reported: what the service was given.
	CPUProvisionedMillicores int64
	MemoryProvisionedBytes   int64
	// FirstSample and LastSample bound the samples; zero when there are none.
	FirstSample time.Time
	LastSample  time.Time
}

// Sample is one interval's usage. CPU is in millicores (thousandths of a
// core), memory in bytes, disk and network throughput in KB/s. Every value
// is finite and non-negative.
type Sample struct {
	Time                  time.Time
	CPUMillicores         int64
	CPUCapacityMillicores int64
	MemoryBytes           int64
	MemoryCapacityBytes   int64
	DiskReadKBps          float64
	DiskWriteKBps         float64
	NetRxKBps             float64
	NetTxKBps             float64
}
