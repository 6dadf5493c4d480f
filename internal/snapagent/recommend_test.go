package snapagent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	oneToTen := []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	tests := []struct {
		name   string
		values []int64
		p      float64
		want   int64
	}{
		{"none", nil, 0.9, 0},
		{"one", []int64{7}, 0.5, 7},
		{"p50 of 1..10", oneToTen, 0.5, 5},
		{"p90 of 1..10", oneToTen, 0.9, 9},
		{"p95 of 1..10", oneToTen, 0.95, 10},
		{"p100 of 1..10", oneToTen, 1, 10},
		{"p0 of 1..10", oneToTen, 0, 1},
		{"p50 of four", []int64{40, 10, 30, 20}, 0.5, 20},
		{"p90 of 100 ranks", ranks(100), 0.9, 90},
		{"p95 of 20 ranks", ranks(20), 0.95, 19},
		{"repeated", []int64{5, 5, 5, 100}, 0.5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.values)
			if got := percentile(tt.values, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %g) = %d, want %d", tt.values, tt.p, got, tt.want)
			}
			if !slices.Equal(in, tt.values) {
				t.Errorf("percentile reordered its input")
			}
		})
	}
}

func ranks(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(n - i)
	}
	return out
}

func TestWindowMaxima(t *testing.T) {
	t.Parallel()
	got := windowMaxima([]int64{1, 5, 2, 8, 3, 3, 9}, 3)
	if want := []int64{5, 8, 9}; !slices.Equal(got, want) {
		t.Errorf("windowMaxima = %v, want %v", got, want)
	}
	if got := windowMaxima([]int64{4, 2}, 1); !slices.Equal(got, []int64{4, 2}) {
		t.Errorf("window of 1 = %v", got)
	}
}

// TestRecommend checks the recommendation on a synthetic hour of history:
// CPU cycling through 100..1000m; memory at 100 MiB, reaching 200 MiB once
// every other minute and 400 MiB in three minutes of the sixty.
func TestRecommend(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []agentapi.UsageSample
	for i := range 360 { // an hour at 10s: 60 one-minute windows of 6
		mem := int64(100 * mib)
		switch {
		case i%120 == 3:
			mem = 400 * mib
		case i%12 == 5:
			mem = 200 * mib
		}
		samples = append(samples, agentapi.UsageSample{
			At:            start.Add(time.Duration(i) * 10 * time.Second),
			CPUMillicores: int64(i%10+1) * 100,
			MemoryBytes:   mem,
		})
	}
	rec := recommend("web", samples, 10*time.Second, usage{cpuMillicores: 5, memoryBytes: mib})
	// CPU: p90 = 900m, p50 = 500m, each plus 15%.
	// Memory peaks, one per minute: 30 at 100 MiB, 27 at 200 MiB, 3 at 400
	// MiB. p95 is rank 57 of 60, 200 MiB: spikes in 5% of the minutes
	// are past it. p50 is rank 30, 100 MiB.
	want := agentapi.Recommendation{
		Service:              "web",
		MinCPUMillicores:     575,
		DesiredCPUMillicores: 1035,
		MinMemoryBytes:       withMargin(100*mib, 0.15),
		DesiredMemoryBytes:   withMargin(200*mib, 0.15),
		Samples:              360,
	}
	basis := rec.Basis
	rec.Basis = ""
	if rec != want {
		t.Errorf("recommend =\n %+v\nwant\n %+v", rec, want)
	}
	for _, s := range []string{"360 samples", "1h0m0s", "p90", "p95", "60 peaks", "15%"} {
		if !strings.Contains(basis, s) {
			t.Errorf("basis %q does not say %q", basis, s)
		}
	}
}

func TestRecommendFallbackAndFloors(t *testing.T) {
	t.Parallel()
	rec := recommend("idle", nil, 10*time.Second, usage{cpuMillicores: 200, memoryBytes: 100 << 20})
	if rec.MinCPUMillicores != 230 || rec.DesiredCPUMillicores != 400 ||
		rec.MinMemoryBytes != withMargin(100<<20, 0.15) || rec.DesiredMemoryBytes != 200<<20 {
		t.Errorf("fallback = %+v", rec)
	}
	if rec.Samples != 0 || !strings.Contains(rec.Basis, "no usage history") {
		t.Errorf("fallback basis = %q", rec.Basis)
	}

	rec = recommend("tiny", []agentapi.UsageSample{{CPUMillicores: 1, MemoryBytes: 1}}, time.Second, usage{})
	if rec.MinCPUMillicores != cpuFloorMillicores || rec.DesiredCPUMillicores != cpuFloorMillicores ||
		rec.MinMemoryBytes != memoryFloorBytes || rec.DesiredMemoryBytes != memoryFloorBytes {
		t.Errorf("floors = %+v", rec)
	}
	rec = recommend("nothing", nil, time.Second, usage{})
	if rec.MinCPUMillicores != cpuFloorMillicores || rec.DesiredMemoryBytes != memoryFloorBytes {
		t.Errorf("no use at all = %+v", rec)
	}
}

// TestHistoryBound records far more samples, for far more services, than
// the history keeps: it never holds more than its fixed size.
func TestHistoryBound(t *testing.T) {
	t.Parallel()
	const size, services = 5, 3
	h := newHistory(size, services, time.Minute)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"a", "b", "c", "d", "e", "f"}
	for i := range 1000 {
		at := start.Add(time.Duration(i) * time.Second)
		batch := map[string]usage{}
		for j := range 2 { // two services a round, cycling through six
			batch[names[(i+j)%len(names)]] = usage{cpuMillicores: int64(i), memoryBytes: int64(i), measured: true}
		}
		h.record(at, batch)
		if len(h.series) > services {
			t.Fatalf("round %d: %d services kept, limit %d", i, len(h.series), services)
		}
		for name, r := range h.series {
			if len(r.buf) != size || cap(r.buf) != size || r.n > size {
				t.Fatalf("round %d: %s holds %d samples in a buffer of %d, limit %d", i, name, r.n, cap(r.buf), size)
			}
		}
	}
	// A service seen every round keeps its latest samples, oldest first.
	for i := 1000; i < 1010; i++ {
		h.record(start.Add(time.Duration(i)*time.Second), map[string]usage{"e": {cpuMillicores: int64(i), measured: true}})
	}
	got := h.samples("e")
	if len(got) != size || got[0].CPUMillicores != 1005 || got[size-1].CPUMillicores != 1009 || !slices.IsSortedFunc(got, func(x, y agentapi.UsageSample) int { return x.At.Compare(y.At) }) {
		t.Errorf("samples of e = %+v", got)
	}
	// A service not seen for longer than the retention is forgotten.
	h.record(start.Add(time.Hour), map[string]usage{"z": {measured: true}})
	if len(h.series) != 1 || len(h.samples("e")) != 0 {
		t.Errorf("stale services kept: %d", len(h.series))
	}
}
