package store_test

import (
	"context"
	"errors"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/internal/usage"
	"github.com/snapcompose/snapcompose/internal/usage/usagetest"
)

const traceSlice = "../../data/bitbrains-rnd-2013-7"

func bitbrainsSeries(service string) usage.Series {
	return usage.Series{Origin: usage.OriginBitbrains, Host: "bitbrains-rnd", Service: service,
		IntervalSeconds: int(usage.BitbrainsInterval / time.Second)}
}

// importFile parses one trace file and imports it as series service.
func importFile(t testing.TB, st *store.Store, path, service string, opts store.UsageImportOptions) (store.UsageImportResult, usage.Stats) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := usage.NewBitbrainsReader(path, f)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.ImportUsage(context.Background(), bitbrainsSeries(service), r.All(), opts)
	if err != nil {
		t.Fatalf("importing %s: %v", path, err)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return res, r.Stats()
}

func countSamples(t testing.TB, st *store.Store, seriesID int64) int64 {
	t.Helper()
	var n int64
	if err := st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM usage_samples WHERE series_id = $1", seriesID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestImportUsageRealTrace imports the trace slice shipped in data/ and
// checks every row of every file arrived, then that a second import adds
// nothing.
func TestImportUsageRealTrace(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	paths, err := filepath.Glob(filepath.Join(traceSlice, "*.csv.gz"))
	if err != nil || len(paths) < 3 {
		t.Fatalf("want at least 3 trace files in %s, got %v (%v)", traceSlice, paths, err)
	}
	var total int64
	for _, path := range paths {
		service := strings.TrimSuffix(filepath.Base(path), ".csv.gz")
		want, first, last := usagetest.TraceRows(t, path)
		total += want
		res, stats := importFile(t, st, path, service, store.UsageImportOptions{BatchSize: 1000})
		if res.Inserted != want || res.Skipped != 0 || stats.Malformed != 0 {
			t.Errorf("%s: inserted %d, skipped %d, malformed %d; want %d, 0, 0", path, res.Inserted, res.Skipped, stats.Malformed, want)
		}
		if got := countSamples(t, st, res.SeriesID); got != want {
			t.Errorf("%s: the table holds %d samples, want %d", path, got, want)
		}
		series, err := st.UsageSeries(ctx, usage.OriginBitbrains, "bitbrains-rnd", service)
		if err != nil {
			t.Fatal(err)
		}
		if !series.FirstSample.Equal(first) || !series.LastSample.Equal(last) || series.IntervalSeconds != 300 || series.ID != res.SeriesID {
			t.Errorf("%s: series = %+v, want samples from %v to %v every 300 s", path, series, first, last)
		}
	}

	// Idempotent: importing everything again inserts nothing and changes nothing.
	before := usageTableDigest(t, st)
	for _, path := range paths {
		service := strings.TrimSuffix(filepath.Base(path), ".csv.gz")
		want, _, _ := usagetest.TraceRows(t, path)
		res, _ := importFile(t, st, path, service, store.UsageImportOptions{})
		if res.Inserted != 0 || res.Skipped != want {
			t.Errorf("%s again: inserted %d, skipped %d; want 0, %d", path, res.Inserted, res.Skipped, want)
		}
	}
	if after := usageTableDigest(t, st); after != before {
		t.Errorf("a second import changed the tables:\nbefore %s\nafter  %s", before, after)
	}
	var n int64
	if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM usage_samples").Scan(&n); err != nil || n != total {
		t.Errorf("usage_samples holds %d rows (%v), want %d", n, err, total)
	}
}

// usageTableDigest summarises both usage tables, so a test can tell whether
// anything changed.
func usageTableDigest(t testing.TB, st *store.Store) string {
	t.Helper()
	var d string
	err := st.Pool().QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM usage_samples)::text || ' ' ||
		       (SELECT md5(string_agg(s::text, ',' ORDER BY s.series_id, s.ts)) FROM usage_samples s) || ' ' ||
		       (SELECT string_agg(s::text, ',' ORDER BY s.id) FROM (
		            SELECT id, origin, host, service, composition_id, interval_seconds, cpu_provisioned_millicores,
		                   memory_provisioned_bytes, first_sample_at, last_sample_at FROM usage_series) s)`).Scan(&d)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// samplesFrom yields n synthetic samples, five minutes apart, calling
// before(i) ahead of each; it may change the sample.
func samplesFrom(start time.Time, n int, before func(i int, s *usage.Sample)) iter.Seq[usage.Sample] {
	return func(yield func(usage.Sample) bool) {
		for i := range n {
			s := usage.Sample{
				Time: start.Add(time.Duration(i) * 5 * time.Minute), CPUMillicores: int64(100 * (i % 20)), CPUCapacityMillicores: 2000,
				MemoryBytes: int64(i) << 20, MemoryCapacityBytes: 4 << 30, DiskReadKBps: 1.5, DiskWriteKBps: 2, NetRxKBps: 0.25, NetTxKBps: float64(i),
			}
			if before != nil {
				before(i, &s)
			}
			if !yield(s) {
				return
			}
		}
	}
}

var july = time.Date(2013, 7, 1, 0, 0, 0, 0, time.UTC)

// TestImportUsageKeepsWholeBatches checks that a failure part way leaves
// only the batches committed before it: a sample breaking a constraint
// loses its batch, a cancelled context the batch in flight.
func TestImportUsageKeepsWholeBatches(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)

	t.Run("constraint violation", func(t *testing.T) {
		// The 24th sample (batch 3) is negative, which the parser never
		// yields but the table must refuse all the same.
		samples := samplesFrom(july, 45, func(i int, s *usage.Sample) {
			if i == 23 {
				s.CPUMillicores = -1
			}
		})
		res, err := st.ImportUsage(ctx, bitbrainsSeries("bad"), samples, store.UsageImportOptions{BatchSize: 10})
		wantError(t, err, domain.EINVALID, "usage_samples_cpu_millicores_check", "batch of 10 samples from 2013-07-01T01:40:00Z")
		if res.Inserted != 20 || res.Batches != 2 {
			t.Errorf("result = %+v, want 2 batches, 20 inserted", res)
		}
		if n := countSamples(t, st, res.SeriesID); n != 20 {
			t.Errorf("the table holds %d samples, want the 20 of the two whole batches before the failure", n)
		}
		series, err := st.UsageSeries(ctx, usage.OriginBitbrains, "bitbrains-rnd", "bad")
		if err != nil {
			t.Fatal(err)
		}
		if want := july.Add(19 * 5 * time.Minute); !series.LastSample.Equal(want) {
			t.Errorf("series ends at %v, want %v: the failed batch must not move it", series.LastSample, want)
		}
	})

	t.Run("cancelled mid-import", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		samples := samplesFrom(july, 100, func(i int, s *usage.Sample) {
			if i == 35 {
				cancel()
			}
		})
		res, err := st.ImportUsage(ctx, bitbrainsSeries("cancelled"), samples, store.UsageImportOptions{BatchSize: 10})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		if n := countSamples(t, st, res.SeriesID); n != 30 || res.Inserted != 30 {
			t.Errorf("the table holds %d samples (result %+v), want the 30 of whole batches", n, res)
		}
	})
}

func TestImportUsageMergesOverlappingImports(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	var batches []store.UsageImportResult
	opts := store.UsageImportOptions{BatchSize: 7, OnBatch: func(r store.UsageImportResult) { batches = append(batches, r) }}
	res, err := st.ImportUsage(ctx, bitbrainsSeries("vm"), samplesFrom(july, 20, nil), opts)
	if err != nil || res.Inserted != 20 || res.Batches != 3 {
		t.Fatalf("first import: %+v, %v; want 20 inserted in 3 batches", res, err)
	}
	// Samples 10..29: 10 already there, 10 new.
	res, err = st.ImportUsage(ctx, bitbrainsSeries("vm"), samplesFrom(july.Add(50*time.Minute), 20, nil), opts)
	if err != nil || res.Inserted != 10 || res.Skipped != 10 {
		t.Fatalf("second import: %+v, %v; want 10 inserted, 10 skipped", res, err)
	}
	if got := []int64{batches[3].Inserted, batches[4].Inserted, batches[5].Inserted}; !slices.Equal(got, []int64{0, 4, 6}) {
		t.Errorf("second import's batches inserted %v, want [0 4 6]", got)
	}
	series, err := st.UsageSeries(ctx, usage.OriginBitbrains, "bitbrains-rnd", "vm")
	if err != nil {
		t.Fatal(err)
	}
	if !series.FirstSample.Equal(july) || !series.LastSample.Equal(july.Add(29*5*time.Minute)) ||
		series.CPUProvisionedMillicores != 2000 || series.MemoryProvisionedBytes != 4<<30 {
		t.Errorf("series = %+v, want 30 samples from %v, 2000 millicores and 4 GiB provisioned", series, july)
	}
}

func TestImportUsageRejectsBadSeries(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	tests := []struct {
		name   string
		series usage.Series
		code   string
		words  []string
	}{
		{"unknown origin", usage.Series{Origin: "prometheus", Host: "h", Service: "s", IntervalSeconds: 60}, domain.EINVALID, []string{"origin", "prometheus"}},
		{"no host or service", usage.Series{Origin: usage.OriginReport, IntervalSeconds: 60}, domain.EINVALID, []string{"host", "service"}},
		{"no interval", usage.Series{Origin: usage.OriginReport, Host: "h", Service: "s"}, domain.EINVALID, []string{"interval_seconds"}},
		{"unknown composition", usage.Series{Origin: usage.OriginReport, Host: "h", Service: "s", IntervalSeconds: 60, CompositionID: randomUUID()},
			domain.ENOTFOUND, []string{"usage_series_composition_id_fkey"}},
		{"malformed composition id", usage.Series{Origin: usage.OriginReport, Host: "h", Service: "s", IntervalSeconds: 60, CompositionID: "42"},
			domain.EINVALID, []string{"composition_id", `"42" is not a UUID`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.ImportUsage(ctx, tt.series, samplesFrom(july, 3, nil), store.UsageImportOptions{})
			wantError(t, err, tt.code, tt.words...)
		})
	}
	if list, err := st.ListUsageSeries(ctx, store.UsageSeriesFilter{}); err != nil || len(list) != 0 {
		t.Errorf("rejected imports left series %v (%v)", list, err)
	}
}

func TestUsageSeriesAndSamplesQueries(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	for _, svc := range []string{"b", "a"} {
		for _, host := range []string{"h2", "h1"} {
			s := usage.Series{Origin: usage.OriginSnapagent, Host: host, Service: svc, IntervalSeconds: 60}
			if _, err := st.ImportUsage(ctx, s, samplesFrom(july, 12, nil), store.UsageImportOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	list, err := st.ListUsageSeries(ctx, store.UsageSeriesFilter{Origin: usage.OriginSnapagent, Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Service != "a" || list[1].Service != "b" || list[0].Host != "h1" {
		t.Fatalf("series on h1 = %+v, want a and b in order", list)
	}
	if _, err := st.UsageSeries(ctx, usage.OriginBitbrains, "h1", "a"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("UsageSeries of a missing series: %v, want ENOTFOUND", err)
	}

	id := list[0].ID
	all, err := st.UsageSamples(ctx, id, time.Time{}, time.Time{})
	if err != nil || len(all) != 12 {
		t.Fatalf("all samples: %d, %v; want 12", len(all), err)
	}
	var want []usage.Sample
	for s := range samplesFrom(july, 12, nil) {
		want = append(want, s)
	}
	if !slices.Equal(all, want) {
		t.Errorf("samples did not round-trip:\ngot  %+v\nwant %+v", all[:2], want[:2])
	}
	// [from, to): the samples at 10:00... are 5 minutes apart.
	from, to := july.Add(10*time.Minute), july.Add(30*time.Minute)
	got, err := st.UsageSamples(ctx, id, from, to)
	if err != nil || len(got) != 4 || !got[0].Time.Equal(from) || !got[3].Time.Equal(to.Add(-5*time.Minute)) {
		t.Errorf("samples in [%v, %v) = %d (%v), want the 4 from %v", from, to, len(got), err, from)
	}
	if got, err := st.UsageSamples(ctx, id, july.Add(55*time.Minute), time.Time{}); err != nil || len(got) != 1 {
		t.Errorf("samples from the last one on = %d (%v), want 1", len(got), err)
	}
}

// TestAllocationVsUsageView checks the analyst view against the same
// figures computed here: mean, p95 and max usage, overrun rate and slack.
func TestAllocationVsUsageView(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	id, _ := planned(t, st, newFixture(), false)
	allocs, err := st.Allocations(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(allocs, func(a store.Allocation) bool { return a.Allocated.CPUMillicores > 100 && a.Allocated.MemoryBytes > 0 })
	if i < 0 {
		t.Fatalf("no service of the fixture got cpu and memory: %+v", allocs)
	}
	a := allocs[i]
	// Usage from 0 to 1.5× the allocation, in 100 even steps.
	const n = 100
	var cpu, mem []float64
	samples := samplesFrom(july, n, func(i int, s *usage.Sample) {
		s.CPUMillicores = a.Allocated.CPUMillicores * 3 * int64(i) / (2 * (n - 1))
		s.MemoryBytes = a.Allocated.MemoryBytes * int64(i) / (n - 1)
		cpu, mem = append(cpu, float64(s.CPUMillicores)), append(mem, float64(s.MemoryBytes))
	})
	series := usage.Series{Origin: usage.OriginReport, Host: "h", Service: a.Service, CompositionID: id, IntervalSeconds: 60}
	if _, err := st.ImportUsage(ctx, series, samples, store.UsageImportOptions{}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		samples                               int64
		cpuMean, cpuP95, cpuOverrun, cpuSlack float64
		cpuMax                                int64
		memMean, memP95, memOverrun, memSlack float64
		memMax                                int64
		cpuAllocated, memAllocated            int64
	}
	err = st.Pool().QueryRow(ctx, `
		SELECT samples, cpu_mean_millicores, cpu_p95_millicores, cpu_max_millicores, cpu_overrun_rate, cpu_slack,
		       memory_mean_bytes, memory_p95_bytes, memory_max_bytes, memory_overrun_rate, memory_slack,
		       cpu_allocated_millicores, memory_allocated_bytes
		FROM analyst_allocation_vs_usage WHERE composition_id = $1 AND service = $2`, id, a.Service).Scan(
		&got.samples, &got.cpuMean, &got.cpuP95, &got.cpuMax, &got.cpuOverrun, &got.cpuSlack,
		&got.memMean, &got.memP95, &got.memMax, &got.memOverrun, &got.memSlack, &got.cpuAllocated, &got.memAllocated)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	cpuAlloc, memAlloc := float64(a.Allocated.CPUMillicores), float64(a.Allocated.MemoryBytes)
	if got.samples != n || got.cpuAllocated != a.Allocated.CPUMillicores || got.memAllocated != a.Allocated.MemoryBytes {
		t.Errorf("samples %d, allocated %d/%d; want %d, %+v", got.samples, got.cpuAllocated, got.memAllocated, n, a.Allocated)
	}
	check("cpu_mean_millicores", got.cpuMean, mean(cpu))
	check("cpu_p95_millicores", got.cpuP95, percentile(cpu, 0.95))
	check("cpu_max_millicores", float64(got.cpuMax), slices.Max(cpu))
	check("cpu_overrun_rate", got.cpuOverrun, above(cpu, cpuAlloc))
	check("cpu_slack", got.cpuSlack, (cpuAlloc-mean(cpu))/cpuAlloc)
	check("memory_mean_bytes", got.memMean, mean(mem))
	check("memory_p95_bytes", got.memP95, percentile(mem, 0.95))
	check("memory_max_bytes", float64(got.memMax), slices.Max(mem))
	check("memory_overrun_rate", got.memOverrun, 0) // peaks at exactly the allocation
	check("memory_slack", got.memSlack, (memAlloc-mean(mem))/memAlloc)
	if got.cpuOverrun < 0.3 || got.cpuOverrun > 0.35 {
		t.Errorf("cpu_overrun_rate = %v, want the third of samples above the allocation", got.cpuOverrun)
	}

	var summary struct {
		samples         int64
		cpuMean, memP95 float64
		first, last     time.Time
	}
	err = st.Pool().QueryRow(ctx, `
		SELECT samples, cpu_mean_millicores, memory_p95_bytes, first_sample_at, last_sample_at
		FROM analyst_usage_summary WHERE composition_id = $1 AND service = $2`, id, a.Service).Scan(
		&summary.samples, &summary.cpuMean, &summary.memP95, &summary.first, &summary.last)
	if err != nil {
		t.Fatal(err)
	}
	if summary.samples != n || !summary.first.Equal(july) || !summary.last.Equal(july.Add((n-1)*5*time.Minute)) {
		t.Errorf("analyst_usage_summary = %+v, want %d samples from %v", summary, n, july)
	}
	check("analyst_usage_summary.cpu_mean_millicores", summary.cpuMean, mean(cpu))
	check("analyst_usage_summary.memory_p95_bytes", summary.memP95, percentile(mem, 0.95))

	// Usage goes with its composition.
	if _, err := st.Pool().Exec(ctx, "DELETE FROM compositions WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	if list, err := st.ListUsageSeries(ctx, store.UsageSeriesFilter{CompositionID: id}); err != nil || len(list) != 0 {
		t.Errorf("series of a deleted composition: %v, %v; want none", list, err)
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// percentile interpolates linearly between closest ranks, as percentile_cont does.
func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	pos := p * float64(len(s)-1)
	lo := math.Floor(pos)
	return s[int(lo)] + (pos-lo)*(s[int(math.Ceil(pos))]-s[int(lo)])
}

func above(xs []float64, limit float64) float64 {
	n := 0
	for _, x := range xs {
		if x > limit {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}

// TestAnalystReadsUsageViewsOnly checks the analyst role can query the usage
// views but neither read nor write the tables under them.
func TestAnalystReadsUsageViewsOnly(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	if _, err := st.ImportUsage(ctx, bitbrainsSeries("1"), samplesFrom(july, 3, nil), store.UsageImportOptions{}); err != nil {
		t.Fatal(err)
	}
	asAnalyst := func(sql string) error {
		return pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE snapcompose_analyst"); err != nil {
				t.Fatal(err)
			}
			rows, err := tx.Query(ctx, sql)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		})
	}
	for _, view := range []string{"analyst_usage_summary", "analyst_allocation_vs_usage"} {
		if err := asAnalyst("SELECT * FROM " + view); err != nil {
			t.Errorf("the analyst cannot read %s: %v", view, err)
		}
	}
	for _, sql := range []string{
		"SELECT * FROM usage_samples",
		"SELECT * FROM usage_series",
		"INSERT INTO usage_series (origin, host, service, interval_seconds) VALUES ('report', 'h', 's', 60)",
		"DELETE FROM usage_samples",
	} {
		if err := asAnalyst(sql); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the analyst: %v, want permission denied", sql, err)
		}
	}
}
