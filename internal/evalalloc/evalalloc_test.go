package evalalloc

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/allocator"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// traceSlice is the committed 3-VM slice of the Bitbrains trace.
const traceSlice = "../../data/bitbrains-rnd-2013-7"

const header = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\t" +
	"Memory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\t" +
	"Disk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n"

const t0 = 1372629804 // 2013-06-30T22:03:24Z, the trace's first timestamp

// row is a Bitbrains row: cores cores at percent CPU, memKB of memCapKB.
func row(ts int64, cores int, percent, memCapKB, memKB float64) string {
	return fmt.Sprintf("%d;\t%d;\t%g;\t%g;\t%g;\t%g;\t%g;\t0.0;\t0.0;\t0.0;\t0.0\n",
		ts, cores, float64(cores)*2600, float64(cores)*26*percent, percent, memCapKB, memKB)
}

// writeTrace writes files name -> rows (without header) as gzip'd CSVs in
// a new directory, and returns it.
func writeTrace(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, rows := range files {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(header + rows))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".csv.gz"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// syntheticTrace writes n VMs with days days of 5-minute rows: usage that
// varies by VM, hour and a deterministic pseudo-random burst.
func syntheticTrace(t *testing.T, n, days int) string {
	t.Helper()
	files := map[string]string{}
	for v := range n {
		var b strings.Builder
		x := uint64(v + 1)
		for k := range days * intervalsPerDay {
			x = x*6364136223846793005 + 1442695040888963407
			noise := float64(x>>40) / float64(1<<24) // [0, 1)
			hour := (k / 12) % 24
			pct := 5 + 3*float64(v) + 20*noise
			if hour >= 9 && hour < 17 {
				pct += 30
			}
			if noise > 0.98 {
				pct = 100
			}
			mem := 1e6*float64(v+1) + 5e5*noise
			b.WriteString(row(t0+int64(k)*300+int64(k/97), 2, math.Min(pct, 100), 8e6, mem))
		}
		files[fmt.Sprint(v+1)] = b.String()
	}
	return writeTrace(t, files)
}

func TestScore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		allocated, used float64
		over            int
		slack           float64
	}{
		{100, 50, 0, 0.5},
		{100, 100, 0, 0},
		{100, 0, 0, 1},
		{100, 150, 1, 0},
		{0, 0, 0, 0},
		{0, 5, 1, 0},
	}
	for _, tt := range tests {
		over, slack := Score(tt.allocated, tt.used)
		if over != tt.over || slack != tt.slack {
			t.Errorf("Score(%v, %v) = %d, %v; want %d, %v", tt.allocated, tt.used, over, slack, tt.over, tt.slack)
		}
	}
}

// TestReplay checks every metric on a hand-made composition.
func TestReplay(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	// One training interval, then four held out; VM a misses one.
	tr := &trace{trainN: 1, testN: 4}
	a := &vm{name: "a"}
	a.usage[CPU] = []float64{9, 1, 2, nan, 4}
	a.usage[Memory] = []float64{1, 1, 1, nan, 1}
	b := &vm{name: "b"}
	b.usage[CPU] = []float64{9, 2, 2, 2, 2}
	b.usage[Memory] = []float64{1, 1, 1, 1, 1}
	c := &composition{vms: []*vm{a, b}}
	c.tally(tr)
	if !slices.Equal(c.testIntervals, []int{1, 2, 4}) {
		t.Fatalf("complete held-out intervals = %v, want [1 2 4]", c.testIntervals)
	}
	if !slices.Equal(c.trainTotal[CPU], []float64{18}) {
		t.Fatalf("training totals = %v, want [18]", c.trainTotal[CPU])
	}
	got := c.replay(tr, CPU, []float64{3, 2}, 4)
	// Service pairs: a 1, 2, 4 against 3 (one overrun; slack 2/3 + 1/3 + 0);
	// b 2, 2, 2, 2 against 2 (no overrun, no slack). Totals 3, 4, 6 against
	// 5: one overrun, slack 2/5 + 1/5 + 0.
	want := tally{servicePairs: 7, serviceOverruns: 1, serviceSlack: 1, totalIntervals: 3, totalOverruns: 1, totalSlack: 0.6,
		allocated: 5, limit: 4, overLimit: 1}
	if math.Abs(got.serviceSlack-want.serviceSlack) > 1e-12 || math.Abs(got.totalSlack-want.totalSlack) > 1e-12 {
		t.Errorf("slack sums = %v, %v; want %v, %v", got.serviceSlack, got.totalSlack, want.serviceSlack, want.totalSlack)
	}
	got.serviceSlack, got.totalSlack = want.serviceSlack, want.totalSlack
	if got != want {
		t.Errorf("replay = %+v\nwant     %+v", got, want)
	}
	so, ss := got.serviceRates()
	to, ts := got.totalRates()
	if so != 1.0/7 || ss != 1.0/7 || to != 1.0/3 || math.Abs(ts-0.2) > 1e-12 {
		t.Errorf("rates = service %v, %v; total %v, %v; want 1/7, 1/7; 1/3, 0.2", so, ss, to, ts)
	}
	rs := got.summary(CPU)
	if rs.AllocatedPerLimit != 1.25 || rs.CompositionsOverLimit != 1 || rs.ServiceIntervals != 7 || rs.TotalIntervals != 3 {
		t.Errorf("summary = %+v", rs)
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	xs := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, tt := range []struct{ p, want float64 }{{0, 10}, {0.1, 10}, {0.11, 20}, {0.5, 50}, {0.9, 90}, {0.91, 100}, {0.99, 100}, {1, 100}} {
		if got := quantile(xs, tt.p); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v, want 0", got)
	}
}

func TestIntervals(t *testing.T) {
	t.Parallel()
	// Rounds 300 s apart with a few seconds of jitter between VMs, a clock
	// that drifts to 301 s, and a round after a gap.
	ts := []int64{0, 1, 300, 302, 601, 902, 1203, 1203 + 149, 5000}
	want := []int64{0, 300, 601, 902, 1203, 5000}
	if got := Intervals(ts); !slices.Equal(got, want) {
		t.Errorf("Intervals = %v, want %v", got, want)
	}
}

// TestSplit checks the windows, the skipping of VMs with too little data,
// and that only training data is learned from.
func TestSplit(t *testing.T) {
	t.Parallel()
	day := int64(24 * 3600)
	var full, short, late strings.Builder
	for k := range 2 * intervalsPerDay {
		ts := int64(t0 + k*300)
		memCap := 4e6
		if ts >= t0+day {
			memCap = 16e6 // resized in the held-out window: not learned from
		}
		full.WriteString(row(ts, 2, float64(k%100), memCap, float64(1000+k)))
		if k < intervalsPerDay {
			short.WriteString(row(ts, 2, 50, 4e6, 1000)) // nothing held out
		}
		if k >= intervalsPerDay/2 {
			late.WriteString(row(ts, 2, 50, 4e6, 1000)) // half the training day: enough
		}
	}
	dir := writeTrace(t, map[string]string{"full": full.String(), "short": short.String(), "late": late.String()})
	paths, err := ListFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := readAll(context.Background(), paths, 2)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newTrace(raw, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.trainN != intervalsPerDay || tr.testN != intervalsPerDay {
		t.Errorf("windows = %d and %d intervals, want %d each", tr.trainN, tr.testN, intervalsPerDay)
	}
	var names []string
	for _, v := range tr.vms {
		names = append(names, v.name)
	}
	if !slices.Equal(names, []string{"full", "late"}) {
		t.Errorf("evaluated %v, want [full late]", names)
	}
	if len(tr.skipped) != 1 || tr.skipped[0].VM != "short" || !strings.Contains(tr.skipped[0].Reason, "and 0 of the 288 of the held-out window") {
		t.Errorf("skipped = %+v, want short, for no held-out data", tr.skipped)
	}
	f := tr.vms[0]
	if got := f.provisioned[Memory]; got != 4e6*1024 {
		t.Errorf("provisioned memory = %v, want the training window's 4e6 KB, not the later resize", got)
	}
	if got := f.provisioned[CPU]; got != 2000 {
		t.Errorf("provisioned cpu = %v millicores, want 2000", got)
	}
	if n := len(f.sorted[Memory]); n != intervalsPerDay {
		t.Errorf("%d training samples, want %d", n, intervalsPerDay)
	}
	if maxMem := f.sorted[Memory][len(f.sorted[Memory])-1]; maxMem != float64(1000+intervalsPerDay-1)*1024 {
		t.Errorf("largest training memory = %v, want the last training row's", maxMem)
	}
	if got := tr.vms[1].usage[CPU][0]; !math.IsNaN(got) {
		t.Errorf("late VM's first interval = %v, want no data", got)
	}
}

func TestGroups(t *testing.T) {
	t.Parallel()
	g := Groups(118, 10, 1)
	if len(g) != 12 {
		t.Fatalf("%d groups, want 12", len(g))
	}
	var sizes []int
	seen := map[int]bool{}
	for _, grp := range g {
		sizes = append(sizes, len(grp))
		for _, i := range grp {
			if seen[i] {
				t.Errorf("VM %d in two groups", i)
			}
			seen[i] = true
		}
	}
	if !slices.Equal(sizes, []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 9, 9}) || len(seen) != 118 {
		t.Errorf("sizes %v covering %d VMs, want ten of 10 and two of 9 covering 118", sizes, len(seen))
	}
	again := Groups(118, 10, 1)
	for i := range g {
		if !slices.Equal(g[i], again[i]) {
			t.Fatalf("group %d differs between two calls with one seed", i)
		}
	}
	if other := Groups(118, 10, 2); slices.Equal(other[0], g[0]) {
		t.Errorf("seeds 1 and 2 give the same first group")
	}
	// The shuffle is this package's own, so it is the same on every Go
	// release: pin it.
	x := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	Shuffle(x, 1)
	if want := []int{4, 2, 8, 1, 9, 3, 0, 6, 7, 5}; !slices.Equal(x, want) {
		t.Errorf("Shuffle(0..9, seed 1) = %v, want %v", x, want)
	}
	if got := Groups(3, 10, 1); len(got) != 1 || len(got[0]) != 3 {
		t.Errorf("Groups(3, 10) = %v, want one group of 3", got)
	}
	if got := Groups(0, 10, 1); got != nil {
		t.Errorf("Groups(0, 10) = %v, want none", got)
	}
}

func TestNewsvendorDemand(t *testing.T) {
	t.Parallel()
	var xs []float64
	for i := 1; i <= 100; i++ {
		xs = append(xs, float64(i))
	}
	d := NewsvendorDemand(xs)
	if d.Min != 0 || d.Desired != 100 {
		t.Errorf("demand %v to %v, want 0 to 100", d.Min, d.Desired)
	}
	// The first segment runs to the 25th percentile, 25: E[min(U, 25)] =
	// (1 + ... + 24 + 25*76) / 100 = 22, so its slope is 0.88, the mean
	// of P(U > x) over [0, 25].
	if d.Value[0].Length != 25 || math.Abs(d.Value[0].Slope-0.88) > 1e-12 {
		t.Errorf("first segment = %+v, want length 25, slope 0.88", d.Value[0])
	}
	sum := 0.0
	for k, sg := range d.Value {
		sum += sg.Length
		if k > 0 && sg.Slope > d.Value[k-1].Slope {
			t.Errorf("segment %d slope %v rises above %v", k, sg.Slope, d.Value[k-1].Slope)
		}
		if !(sg.Slope > 0 && sg.Slope <= 1) {
			t.Errorf("segment %d slope %v is not a probability", k, sg.Slope)
		}
	}
	if math.Abs(sum-100) > 1e-9 || len(d.Value) > allocator.MaxSegments {
		t.Errorf("%d segments of total length %v, want at most %d adding up to 100", len(d.Value), sum, allocator.MaxSegments)
	}
	if d := NewsvendorDemand([]float64{0, 0, 0}); d.Desired != 0 || len(d.Value) != 0 {
		t.Errorf("an idle VM demands %+v, want nothing", d)
	}
	// Two VMs sharing a budget get the same chance of exceeding their
	// shares: a VM twice as large gets twice as much.
	var big []float64
	for _, x := range xs {
		big = append(big, 2*x)
	}
	p := &allocator.Problem{Services: []allocator.Service{{Name: "small"}, {Name: "big"}}}
	p.Services[0].Demand[allocator.CPU] = NewsvendorDemand(xs)
	p.Services[1].Demand[allocator.CPU] = NewsvendorDemand(big)
	p.Limits = [3]float64{180, math.Inf(1), math.Inf(1)}
	res, err := allocator.Allocate(p)
	if err != nil {
		t.Fatal(err)
	}
	if s, b := res.Services[0].Amount[allocator.CPU], res.Services[1].Amount[allocator.CPU]; math.Abs(s-60) > 1e-6 || math.Abs(b-120) > 1e-6 {
		t.Errorf("split of 180 = %v and %v, want 60 and 120", s, b)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	base := DefaultConfig("dir")
	tests := []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Dir = "" }, "--usage: is required"},
		{func(c *Config) { c.GroupSize = 0 }, "--group-size: want 1 to 10000"},
		{func(c *Config) { c.TrainDays = 0 }, "--train-days"},
		{func(c *Config) { c.TestDays = -1 }, "--test-days"},
		{func(c *Config) { c.LimitFactor = 0 }, "--limit-factor"},
		{func(c *Config) { c.LimitFactor = math.NaN() }, "--limit-factor"},
		{func(c *Config) { c.TargetOverrun = 1 }, "--target-overrun"},
		{func(c *Config) { c.TargetOverrun = 0 }, "--target-overrun"},
		{func(c *Config) { c.Workers = 0 }, "--workers"},
		{func(c *Config) { c.Seeds = nil }, "--seed"},
		{func(c *Config) { c.GroupSize, c.Workers = 0, 0 }, "--workers: want 1 to 64"},
	}
	for _, tt := range tests {
		c := base
		tt.change(&c)
		err := c.Validate()
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want EINVALID mentioning %q", err, tt.want)
		}
	}
	if err := base.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestRunBadInput(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644)
	notTrace := writeTrace(t, map[string]string{})
	os.WriteFile(filepath.Join(notTrace, "bad.csv"), []byte("a,b,c\n1,2,3\n"), 0o644)
	short := writeTrace(t, map[string]string{"7": row(t0, 2, 10, 4e6, 1e6) + row(t0+300, 2, 10, 4e6, 1e6)})
	file := filepath.Join(short, "7.csv.gz")
	twice := writeTrace(t, map[string]string{"7": row(t0, 2, 10, 4e6, 1e6)})
	os.WriteFile(filepath.Join(twice, "7.csv"), []byte(header), 0o644)
	tests := []struct {
		name, dir string
		want      []string
	}{
		{"missing", filepath.Join(empty, "nope"), []string{"--usage", "nope", "no such file or directory"}},
		{"a file", file, []string{"--usage", "is not a directory"}},
		{"no trace files", empty, []string{"--usage", "holds no .csv or .csv.gz files"}},
		{"one VM twice", twice, []string{"7.csv and", "7.csv.gz are both VM \"7\""}},
		{"not a trace", notTrace, []string{"bad.csv", "not a Bitbrains CSV"}},
		{"too little data", short, []string{"no VM in", "has enough data", "7.csv.gz", "data in 2 of the 6,048"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Run(context.Background(), DefaultConfig(tt.dir))
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("Run = %v, want EINVALID", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// checkReport checks what must hold of every report.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	for _, ev := range rep.Evaluations {
		if len(ev.Strategies) != int(numStrategies) {
			t.Fatalf("%d strategies, want %d", len(ev.Strategies), numStrategies)
		}
		for s, sm := range ev.Strategies {
			if sm.Strategy != Strategies[s] || len(sm.Resources) != int(numResources) {
				t.Errorf("strategy %d = %+v", s, sm)
			}
			for _, rs := range sm.Resources {
				for _, x := range []float64{rs.ServiceOverrun, rs.TotalOverrun, rs.ServiceSlack, rs.TotalSlack} {
					if !(x >= 0 && x <= 1) {
						t.Errorf("%s %s: rate %v outside [0, 1]", sm.Strategy, rs.Resource, x)
					}
				}
				if rs.TotalIntervals == 0 || rs.ServiceIntervals < rs.TotalIntervals {
					t.Errorf("%s %s: %d service and %d total intervals", sm.Strategy, rs.Resource, rs.ServiceIntervals, rs.TotalIntervals)
				}
			}
		}
		if len(ev.Frontier) != len(FrontierTargets) {
			t.Errorf("%d frontier points, want %d", len(ev.Frontier), len(FrontierTargets))
		}
		for _, cr := range ev.Compositions {
			if cr.Excluded != "" {
				continue
			}
			for _, sa := range cr.Strategies {
				for _, ra := range sa.Resources {
					sum := 0.0
					for _, a := range ra.PerVM {
						if !(a >= 0) {
							t.Errorf("%s %s %s: allocation %v", cr.Name, sa.Strategy, ra.Resource, a)
						}
						sum += a
					}
					if sum != ra.Allocated || len(ra.PerVM) != len(cr.VMs) {
						t.Errorf("%s %s %s: %d amounts adding up to %v, reported %v", cr.Name, sa.Strategy, ra.Resource, len(ra.PerVM), sum, ra.Allocated)
					}
					over := sum > ra.Limit
					if over != ra.OverLimit {
						t.Errorf("%s %s %s: sum %v, limit %v, over_limit %v", cr.Name, sa.Strategy, ra.Resource, sum, ra.Limit, ra.OverLimit)
					}
					if over && sa.Strategy != Provisioned {
						t.Errorf("%s %s %s: allocates %v over the limit %v", cr.Name, sa.Strategy, ra.Resource, sum, ra.Limit)
					}
				}
			}
		}
	}
}

func runJSON(t *testing.T, cfg Config) (*Report, []byte) {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	return rep, b.Bytes()
}

// TestTraceSlice runs the whole evaluation on the committed slice: VM 1
// has a month of data; 14 and 82 start near its end and are skipped.
func TestTraceSlice(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig(traceSlice)
	cfg.GroupSize = 3
	rep, out := runJSON(t, cfg)
	checkReport(t, rep)
	if rep.Trace.VMs != 1 || len(rep.Trace.Skipped) != 2 || rep.Trace.Skipped[0].VM != "14" || rep.Trace.Skipped[1].VM != "82" {
		t.Errorf("evaluated %d VMs, skipped %+v; want 1, and 14 and 82", rep.Trace.VMs, rep.Trace.Skipped)
	}
	if rep.Trace.Rows != 8260+428+2073 {
		t.Errorf("read %d rows, want 10,761", rep.Trace.Rows)
	}
	ev := rep.Evaluations[0]
	if ev.Evaluated != 1 || ev.VMs != 1 || ev.Compositions[0].VMs[0] != "1" {
		t.Errorf("compositions = %+v", ev.Compositions)
	}
	cfg.Workers = 1
	if _, again := runJSON(t, cfg); !bytes.Equal(out, again) {
		t.Errorf("a second run (one worker) wrote different JSON")
	}
	var text1, text2 bytes.Buffer
	WriteText(&text1, rep)
	WriteText(&text2, rep)
	if !bytes.Equal(text1.Bytes(), text2.Bytes()) || !strings.Contains(text1.String(), "skipped for too little data in a window: 14, 82") {
		t.Errorf("text report:\n%s", text1.String())
	}
	var decoded map[string]any
	if err := json.Unmarshal(out, &decoded); err != nil {
		t.Errorf("JSON does not decode: %v", err)
	}
}

// TestSynthetic runs the whole evaluation on generated VMs, several per
// composition, over several seeds.
func TestSynthetic(t *testing.T) {
	t.Parallel()
	dir := syntheticTrace(t, 7, 28)
	cfg := DefaultConfig(dir)
	cfg.GroupSize = 3
	cfg.Seeds = []uint64{1, 2, 3}
	rep, out := runJSON(t, cfg)
	checkReport(t, rep)
	if len(rep.Evaluations) != 3 {
		t.Fatalf("%d evaluations, want 3", len(rep.Evaluations))
	}
	for _, ev := range rep.Evaluations {
		if ev.Evaluated != 3 || ev.VMs != 7 || ev.MinSize != 2 || ev.MaxSize != 3 {
			t.Errorf("seed %d: %d compositions of %d–%d, %d VMs; want 3 of 2–3, 7 VMs", ev.Seed, ev.Evaluated, ev.MinSize, ev.MaxSize, ev.VMs)
		}
		// Every held-out interval has data for every VM: 7 days of them.
		if got := ev.Strategies[0].Resources[0].ServiceIntervals; got != 7*7*intervalsPerDay {
			t.Errorf("seed %d: %d VM-intervals, want %d", ev.Seed, got, 7*7*intervalsPerDay)
		}
		// Provisioned (2 cores, ~8 GB) is far above what these VMs use.
		if p := ev.Strategies[stProvisioned].Resources[Memory]; p.CompositionsOverLimit != 3 || p.TotalOverrun != 0 {
			t.Errorf("seed %d: provisioned memory %+v, want over the limit everywhere and never overrun", ev.Seed, p)
		}
	}
	if slices.Equal(rep.Evaluations[0].Compositions[0].VMs, rep.Evaluations[1].Compositions[0].VMs) &&
		slices.Equal(rep.Evaluations[0].Compositions[1].VMs, rep.Evaluations[1].Compositions[1].VMs) {
		t.Errorf("seeds 1 and 2 made the same compositions")
	}
	if _, again := runJSON(t, cfg); !bytes.Equal(out, again) {
		t.Errorf("a second run wrote different JSON")
	}
	var text bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seed 3: 3 compositions of 2–3 VMs", "across seeds", "ours better on both:", "p99.5"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestRunCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, DefaultConfig(traceSlice)); err == nil {
		t.Errorf("Run on a canceled context succeeded")
	}
}

// TestFullTrace runs the default evaluation on the whole trace when it is
// at hand (SNAPCOMPOSE_BITBRAINS_DIR, else ../shared/data next to the
// repository) and checks what must hold of it; it skips otherwise.
func TestFullTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("the full trace takes a few seconds")
	}
	dir := os.Getenv("SNAPCOMPOSE_BITBRAINS_DIR")
	if dir == "" {
		dir = "../../../shared/data/bitbrains-rnd-2013-7"
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.csv.gz")); len(files) < 100 {
		t.Skipf("no full Bitbrains trace in %s: set SNAPCOMPOSE_BITBRAINS_DIR", dir)
	}
	t.Parallel()
	rep, err := Run(context.Background(), DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	ev := rep.Evaluations[0]
	if rep.Trace.VMs != 118 || ev.Evaluated != 12 || ev.VMs != 118 {
		t.Errorf("%d VMs in %d compositions, want 118 in 12", rep.Trace.VMs, ev.Evaluated)
	}
	// Provisioned never overruns memory, but is over every limit.
	if p := ev.Strategies[stProvisioned].Resources[Memory]; p.TotalOverrun != 0 || p.CompositionsOverLimit != 12 {
		t.Errorf("provisioned memory: %+v", p)
	}
}
