package snapagent

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

// The recommendation's parameters; see recommend.
const (
	safetyMargin         = 0.15
	fallbackMargin       = 1.00
	cpuFloorMillicores   = 10
	memoryFloorBytes     = 16 << 20
	memoryPeakWindow     = time.Minute
	cpuDesiredPercentile = 0.90
	memDesiredPercentile = 0.95
	minimumPercentile    = 0.50
)

// recommend says how much CPU and memory a service should get, from its
// usage samples, in the spirit of the Kubernetes VPA recommender:
//
//	desired CPU    = p90 of the CPU samples × (1 + 15%)
//	minimum CPU    = p50 of the CPU samples × (1 + 15%)
//	desired memory = p95 of the memory peaks × (1 + 15%)
//	minimum memory = p50 of the memory peaks × (1 + 15%)
//
// where the memory peaks are the maxima over consecutive one-minute
// windows of samples, so that one short spike does not set the figure but
// a spike every minute does (VPA takes daily peaks over eight days; the
// agent's history is an hour by default). Percentiles are nearest-rank.
// Results are raised to floors of 10 millicores and 16 MiB, and the
// minimum never exceeds the desired figure.
//
// With no samples yet, current (the use measured during the request) is
// used instead: desired = current × (1 + 100%), minimum = current × (1 +
// 15%), with the same floors; Basis says so.
func recommend(service string, samples []agentapi.UsageSample, interval time.Duration, current usage) agentapi.Recommendation {
	rec := agentapi.Recommendation{Service: service, Samples: len(samples)}
	if len(samples) == 0 {
		rec.MinCPUMillicores = withMargin(current.cpuMillicores, safetyMargin)
		rec.DesiredCPUMillicores = withMargin(current.cpuMillicores, fallbackMargin)
		rec.MinMemoryBytes = withMargin(current.memoryBytes, safetyMargin)
		rec.DesiredMemoryBytes = withMargin(current.memoryBytes, fallbackMargin)
		rec.Basis = fmt.Sprintf("no usage history yet: the current use (%dm CPU, %s memory) plus %.0f%% for desired and %.0f%% for minimum",
			current.cpuMillicores, formatBytes(current.memoryBytes), fallbackMargin*100, safetyMargin*100)
	} else {
		cpu := make([]int64, len(samples))
		mem := make([]int64, len(samples))
		for i, s := range samples {
			cpu[i], mem[i] = s.CPUMillicores, s.MemoryBytes
		}
		window := max(1, int(memoryPeakWindow/max(interval, time.Millisecond)))
		peaks := windowMaxima(mem, window)
		rec.MinCPUMillicores = withMargin(percentile(cpu, minimumPercentile), safetyMargin)
		rec.DesiredCPUMillicores = withMargin(percentile(cpu, cpuDesiredPercentile), safetyMargin)
		rec.MinMemoryBytes = withMargin(percentile(peaks, minimumPercentile), safetyMargin)
		rec.DesiredMemoryBytes = withMargin(percentile(peaks, memDesiredPercentile), safetyMargin)
		span := samples[len(samples)-1].At.Sub(samples[0].At) + interval
		rec.Basis = fmt.Sprintf("%d samples every %s over %s: CPU p90 (desired) and p50 (minimum) of the samples, memory p95 and p50 of %d peaks over %s windows, plus %.0f%%",
			len(samples), interval, span.Round(time.Second), len(peaks), memoryPeakWindow, safetyMargin*100)
	}
	rec.MinCPUMillicores = max(rec.MinCPUMillicores, cpuFloorMillicores)
	rec.DesiredCPUMillicores = max(rec.DesiredCPUMillicores, rec.MinCPUMillicores)
	rec.MinMemoryBytes = max(rec.MinMemoryBytes, memoryFloorBytes)
	rec.DesiredMemoryBytes = max(rec.DesiredMemoryBytes, rec.MinMemoryBytes)
	return rec
}

// percentile returns the nearest-rank p-th percentile of values (0 < p ≤
// 1): the smallest value at least a fraction p of the values do not
// exceed. It returns 0 for no values.
func percentile(values []int64, p float64) int64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// windowMaxima returns the maximum of each run of window consecutive
// values; the last run may be shorter.
func windowMaxima(values []int64, window int) []int64 {
	var out []int64
	for i := 0; i < len(values); i += window {
		out = append(out, slices.Max(values[i:min(i+window, len(values))]))
	}
	return out
}

// withMargin returns v raised by margin, rounded up.
func withMargin(v int64, margin float64) int64 {
	if v <= 0 {
		return 0
	}
	return int64(math.Ceil(float64(v) * (1 + margin)))
}

func formatBytes(n int64) string {
	const mib = 1 << 20
	if n >= mib {
		return fmt.Sprintf("%.1fMiB", float64(n)/mib)
	}
	return fmt.Sprintf("%dB", n)
}
