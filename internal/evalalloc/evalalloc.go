// Package evalalloc evaluates allocation strategies on real usage: the
// Bitbrains VM trace (GWA-T-12 "Rnd", Grid Workloads Archive, TU Delft;
// Shen, van Beek, Iosup, CCGrid 2015). It is what `snapcompose eval
// allocation` runs.
//
// # Method
//
// The trace samples every VM at the same moments, every 5 minutes (299 to
// 301 s apart: the clock drifts). Those sampling rounds are the intervals
// (see Intervals), so the VMs' samples of one moment always share an
// interval; a second sample of one VM in an interval is dropped and
// counted (VMs 20 and 54 repeat stretches a few seconds apart). The split
// is global, so that the VMs of a composition are compared over the same
// time: the first TrainDays days from the trace's first timestamp (the
// common start) are the training window, the TestDays days after it the
// held-out window, and anything later is unused. A VM with data in fewer
// than half of the nominal 5-minute intervals of either window is skipped
// and named.
//
// The VMs left are shuffled with the seed and dealt into compositions of
// about GroupSize VMs (ceil(n/GroupSize) compositions whose sizes differ by
// at most one); each VM is a service of its composition. Each composition
// gets a shared limit per resource: LimitFactor times the peak of its total
// usage in the training window, the most the composition ever needed
// together. Only CPU (millicores) and memory (bytes) are evaluated: the
// trace has disk throughput but no disk capacity.
//
// Three strategies allocate a static amount to each VM, learned from the
// training window only:
//
//   - provisioned: the VM's provisioned capacity (the largest the training
//     window reports), as is; a composition whose sum exceeds its limit is
//     flagged, not scaled.
//   - vpa: the Kubernetes VPA recommender's rule, the 90th percentile of the
//     VM's training usage plus 15%; where the composition's sum exceeds its
//     limit every VM is scaled down by the same factor.
//   - ours: the composition's budget is the (1 - TargetOverrun) quantile of
//     its training-window total (so, had the training weeks been replayed,
//     the total would have overrun in at most TargetOverrun of the
//     intervals; the quantile of the total, not the sum of the VMs'
//     quantiles, since their peaks do not coincide), capped at the limit.
//     allocator.Allocate splits that budget across the VMs: each VM's
//     demand runs from 0 to its training maximum, with concave piecewise-
//     linear value whose slope at a is the empirical probability that the
//     VM's usage exceeds a (averaged over segments between its 25th, 50th,
//     ..., 99.9th percentiles and maximum), the newsvendor value of
//     capacity. Filling the budget by slope gives every VM the same
//     probability of exceeding its share, which minimises the expected
//     total shortfall.
//
// The held-out window is then replayed against each allocation. Per
// resource and strategy:
//
//   - service overrun: the share of (VM, interval) pairs with data where the
//     VM's usage exceeds its allocation;
//   - total overrun: the share of (composition, interval) pairs, counting
//     the intervals in which every VM of the composition has data, where
//     the composition's total usage exceeds its total allocation;
//   - slack: (allocated - used) / allocated, taken as 0 in an overrun
//     interval (the unused share of the allocation: a shortfall is counted
//     as an overrun, not netted against waste) and as 0 where nothing is
//     allocated; averaged over the same pairs, per service and for the
//     total.
//
// For a static allocation, a composition's total overrun rate and total
// slack both depend only on its total allocation (the first falls and the
// second rises with it), so within one composition no strategy can have
// both fewer overruns and less slack than another; across compositions it
// can, by putting its capacity where the trade-off is best. So each
// evaluation also replays ours at the targets of FrontierTargets: the
// curve it traces is the trade-off ours offers, and vpa's point can be
// read against it.
//
// Everything is deterministic for a seed: the shuffle is this package's
// own generator (splitmix64), sums run in a fixed order, and reading files
// concurrently does not change their order.
package evalalloc

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/usage"
)

// Defaults of Config.
const (
	DefaultGroupSize     = 10
	DefaultTrainDays     = 21
	DefaultTestDays      = 7
	DefaultLimitFactor   = 1.0
	DefaultTargetOverrun = 0.01
	DefaultWorkers       = 2
)

// MinCoverage is the least share of a window's intervals a VM must have
// data in, in both windows, to be evaluated.
const MinCoverage = 0.5

// VPA's rule: the 90th percentile of usage plus 15%.
const (
	vpaQuantile = 0.9
	vpaMargin   = 1.15
)

// Interval is the length of one interval of the grid: the trace's sampling
// interval.
const Interval = usage.BitbrainsInterval

const intervalsPerDay = int(24 * time.Hour / Interval)

// Resource indexes the two resources evaluated.
type Resource int

// The resources evaluated.
const (
	CPU Resource = iota
	Memory
	numResources
)

var resourceNames = [numResources]string{"cpu", "memory"}

func (r Resource) String() string { return resourceNames[r] }

// Strategy names.
const (
	Provisioned = "provisioned"
	VPA         = "vpa"
	Ours        = "ours"
)

// Strategy indexes, in the order reports show them.
const (
	stProvisioned = iota
	stVPA
	stOurs
	numStrategies
)

// Strategies lists the strategies in the order reports show them.
var Strategies = [numStrategies]string{Provisioned, VPA, Ours}

// Config is what to evaluate and how.
type Config struct {
	// Dir is the trace directory: one Bitbrains .csv or .csv.gz file per VM.
	Dir string
	// Seeds are the seeds of the shufflings into compositions; each gives
	// one evaluation.
	Seeds []uint64
	// GroupSize is the number of VMs per composition (the last ones may
	// hold one fewer).
	GroupSize int
	// TrainDays and TestDays are the lengths of the training and held-out
	// windows.
	TrainDays, TestDays int
	// LimitFactor scales each composition's shared limit: the peak of its
	// training-window total.
	LimitFactor float64
	// TargetOverrun is the share of training intervals in which ours lets a
	// composition's total exceed its budget.
	TargetOverrun float64
	// Workers is how many files are read at once.
	Workers int
}

// DefaultConfig returns the defaults, reading dir.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, Seeds: []uint64{1}, GroupSize: DefaultGroupSize, TrainDays: DefaultTrainDays,
		TestDays: DefaultTestDays, LimitFactor: DefaultLimitFactor, TargetOverrun: DefaultTargetOverrun, Workers: DefaultWorkers}
}

// Validate returns an EINVALID error naming each bad field by its flag.
func (c *Config) Validate() error {
	var problems []domain.Problem
	add := func(where, format string, args ...any) {
		problems = append(problems, domain.Problem{Where: where, Message: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.Dir) == "" {
		add("--usage", "is required: the directory of a Bitbrains trace (one .csv or .csv.gz file per VM)")
	}
	if len(c.Seeds) == 0 {
		add("--seed", "give at least one seed")
	}
	if c.GroupSize < 1 || c.GroupSize > 10000 {
		add("--group-size", "want 1 to 10000 VMs per composition, got %d", c.GroupSize)
	}
	if c.TrainDays < 1 || c.TrainDays > 366 {
		add("--train-days", "want 1 to 366 days, got %d", c.TrainDays)
	}
	if c.TestDays < 1 || c.TestDays > 366 {
		add("--test-days", "want 1 to 366 days, got %d", c.TestDays)
	}
	if !(c.LimitFactor > 0 && c.LimitFactor <= 1000) {
		add("--limit-factor", "want a number above 0 and at most 1000, got %v", c.LimitFactor)
	}
	if !(c.TargetOverrun > 0 && c.TargetOverrun < 1) {
		add("--target-overrun", "want a share strictly between 0 and 1 (0.01 is 1%%), got %v", c.TargetOverrun)
	}
	if c.Workers < 1 || c.Workers > 64 {
		add("--workers", "want 1 to 64, got %d", c.Workers)
	}
	if len(problems) == 1 {
		return domain.Errorf(domain.EINVALID, "%s: %s", problems[0].Where, problems[0].Message)
	}
	if len(problems) > 0 {
		return domain.Invalid("eval allocation: invalid flags", problems)
	}
	return nil
}

// Run reads the trace and evaluates it once per seed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	paths, err := ListFiles(cfg.Dir)
	if err != nil {
		return nil, err
	}
	raw, err := readAll(ctx, paths, cfg.Workers)
	if err != nil {
		return nil, interrupted(ctx, err)
	}
	tr, err := newTrace(raw, cfg.TrainDays, cfg.TestDays)
	if err != nil {
		return nil, err
	}
	if len(tr.vms) == 0 {
		return nil, noData(cfg, tr)
	}
	rep := &Report{Trace: tr.summary(cfg)}
	for _, seed := range cfg.Seeds {
		if err := ctx.Err(); err != nil {
			return nil, interrupted(ctx, err)
		}
		ev, err := evaluate(tr, cfg, seed)
		if err != nil {
			return nil, err
		}
		rep.Evaluations = append(rep.Evaluations, *ev)
	}
	return rep, nil
}

// interrupted turns err into an EUNAVAILABLE error when ctx was canceled.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return domain.Errorf(domain.EUNAVAILABLE, "eval allocation: interrupted before the report was complete (%v)", ctx.Err())
}

// noData is the error for a trace in which no VM has enough data.
func noData(cfg Config, tr *trace) error {
	var problems []domain.Problem
	for _, s := range tr.skipped {
		problems = append(problems, domain.Problem{Where: s.File, Message: s.Reason})
	}
	return domain.Invalid(fmt.Sprintf("--usage: no VM in %s has enough data: each needs data in at least half of the 5-minute intervals of the %d training days and of the %d held-out days that follow, counted from the trace's first timestamp",
		cfg.Dir, cfg.TrainDays, cfg.TestDays), problems)
}

// trace is the VMs of a trace on one grid of intervals, split into
// windows.
type trace struct {
	origin     time.Time
	testStart  time.Time
	testEnd    time.Time
	trainN     int // intervals in the training window
	testN      int // intervals in the held-out window
	files      int
	rows       int64
	malformed  int
	repeated   int
	collisions int
	vms        []*vm
	skipped    []Skipped
	lastSample time.Time
}

// vm is one VM's usage on the grid. usage[r][k] is NaN where the VM has no
// sample in interval k (k < trainN: training, else held-out).
type vm struct {
	name        string
	file        string
	usage       [numResources][]float64
	provisioned [numResources]float64
	// sorted holds each resource's training samples in increasing order.
	sorted [numResources][]float64
}

// Intervals returns the starts of the grid's intervals for the sorted,
// distinct timestamps ts: the trace samples every VM at (nearly) the same
// moments, so an interval starts at a timestamp and takes in every
// timestamp less than half a sampling interval after it. Unlike a fixed
// grid, this follows the sampling clock where it drifts (consecutive
// samples are 299 to 301 s apart in the trace), so two samples of one VM
// never fall in one interval and the VMs' samples of one moment always do.
func Intervals(ts []int64) []int64 {
	half := int64(Interval/time.Second) / 2
	var starts []int64
	for _, t := range ts {
		if len(starts) == 0 || t-starts[len(starts)-1] >= half {
			starts = append(starts, t)
		}
	}
	return starts
}

// newTrace places the samples on the grid, splits it at the common start
// plus trainDays, and skips the VMs with too little data in either window.
func newTrace(raw []rawSeries, trainDays, testDays int) (*trace, error) {
	tr := &trace{files: len(raw)}
	var ts []int64
	for _, s := range raw {
		tr.rows += int64(s.stats.Rows)
		tr.malformed += s.stats.Malformed
		tr.repeated += s.stats.Repeated
		for _, x := range s.samples {
			ts = append(ts, x.unix)
		}
	}
	if len(ts) == 0 {
		var problems []domain.Problem
		for _, s := range raw {
			problems = append(problems, domain.Problem{Where: s.path, Message: fmt.Sprintf("no usable rows (%d malformed)", s.stats.Malformed)})
		}
		return nil, domain.Invalid("--usage: the trace files hold no usable rows", problems)
	}
	slices.Sort(ts)
	ts = slices.Compact(ts)
	starts := Intervals(ts)
	tr.origin = time.Unix(ts[0], 0).UTC()
	tr.lastSample = time.Unix(ts[len(ts)-1], 0).UTC()
	tr.testStart = tr.origin.AddDate(0, 0, trainDays)
	tr.testEnd = tr.testStart.AddDate(0, 0, testDays)
	// Intervals starting before testStart are training, those from
	// testStart to testEnd held out, later ones unused.
	trainEnd, _ := slices.BinarySearch(starts, tr.testStart.Unix())
	testEnd, _ := slices.BinarySearch(starts, tr.testEnd.Unix())
	tr.trainN, tr.testN = trainEnd, testEnd-trainEnd
	// Coverage counts against the nominal number of intervals, so a trace
	// shorter than the windows leaves its VMs short of data.
	needTrain := MinCoverage * float64(trainDays*intervalsPerDay)
	needTest := MinCoverage * float64(testDays*intervalsPerDay)
	n := testEnd
	for _, s := range raw {
		v := &vm{name: s.name, file: s.path}
		for r := range numResources {
			v.usage[r] = make([]float64, n)
			for k := range v.usage[r] {
				v.usage[r][k] = math.NaN()
			}
		}
		train, test := 0, 0
		for _, x := range s.samples {
			k, found := slices.BinarySearch(starts, x.unix)
			if !found {
				k-- // the interval whose start is the last before x
			}
			if k >= n {
				continue
			}
			if !math.IsNaN(v.usage[CPU][k]) {
				tr.collisions++
				continue
			}
			v.usage[CPU][k], v.usage[Memory][k] = x.cpu, x.memory
			if k < tr.trainN {
				train++
				v.provisioned[CPU] = max(v.provisioned[CPU], x.cpuCap)
				v.provisioned[Memory] = max(v.provisioned[Memory], x.memCap)
			} else {
				test++
			}
		}
		if float64(train) < needTrain || float64(test) < needTest {
			tr.skipped = append(tr.skipped, Skipped{VM: s.name, File: s.path, Reason: fmt.Sprintf(
				"data in %s of the %s 5-minute intervals of the training window and %s of the %s of the held-out window: need at least half of each (its %s samples run from %s to %s)",
				thousands(int64(train)), thousands(int64(trainDays*intervalsPerDay)), thousands(int64(test)), thousands(int64(testDays*intervalsPerDay)),
				thousands(int64(len(s.samples))), spanTime(s.samples, true), spanTime(s.samples, false))})
			continue
		}
		for r := range numResources {
			for _, x := range v.usage[r][:tr.trainN] {
				if !math.IsNaN(x) {
					v.sorted[r] = append(v.sorted[r], x)
				}
			}
			slices.Sort(v.sorted[r])
		}
		tr.vms = append(tr.vms, v)
	}
	return tr, nil
}

// spanTime formats the first (or last) sample's time, or "-" when none.
func spanTime(s []rawSample, first bool) string {
	if len(s) == 0 {
		return "-"
	}
	t := s[0].unix
	for _, x := range s {
		if first {
			t = min(t, x.unix)
		} else {
			t = max(t, x.unix)
		}
	}
	return time.Unix(t, 0).UTC().Format(timeLayout)
}

const timeLayout = "2006-01-02 15:04 UTC"

func (tr *trace) summary(cfg Config) TraceSummary {
	s := TraceSummary{
		Dir:           cfg.Dir,
		Files:         tr.files,
		Rows:          tr.rows,
		Malformed:     tr.malformed,
		Repeated:      tr.repeated,
		Collisions:    tr.collisions,
		VMs:           len(tr.vms),
		Skipped:       tr.skipped,
		TrainStart:    tr.origin,
		TestStart:     tr.testStart,
		TestEnd:       tr.testEnd,
		LastSample:    tr.lastSample,
		IntervalSec:   int(Interval / time.Second),
		TrainDays:     cfg.TrainDays,
		TestDays:      cfg.TestDays,
		GroupSize:     cfg.GroupSize,
		LimitFactor:   cfg.LimitFactor,
		TargetOverrun: cfg.TargetOverrun,
	}
	if s.Skipped == nil {
		s.Skipped = []Skipped{}
	}
	return s
}

// quantile returns the p-quantile of sorted (nearest rank: the
// ceil(p*n)-th smallest value, the smallest for p = 0).
func quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Shuffle permutes x in place with the seed, the same way on every
// platform and Go release (Fisher–Yates driven by splitmix64).
func Shuffle[T any](x []T, seed uint64) {
	g := splitmix64(seed)
	for i := len(x) - 1; i > 0; i-- {
		j := int(g.uint64n(uint64(i + 1)))
		x[i], x[j] = x[j], x[i]
	}
}

type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uint64n returns a uniform number in [0, n), n > 0, by rejection.
func (s *splitmix64) uint64n(n uint64) uint64 {
	limit := math.MaxUint64 - math.MaxUint64%n
	for {
		if v := s.next(); v < limit {
			return v % n
		}
	}
}

// Groups deals n items, shuffled with the seed, into ceil(n/size)
// groups whose sizes differ by at most one, larger groups first. It
// returns indexes into the items.
func Groups(n, size int, seed uint64) [][]int {
	if n == 0 || size < 1 {
		return nil
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	Shuffle(order, seed)
	k := (n + size - 1) / size
	groups := make([][]int, 0, k)
	base, extra := n/k, n%k
	at := 0
	for g := range k {
		m := base
		if g < extra {
			m++
		}
		groups = append(groups, slices.Clone(order[at:at+m]))
		at += m
	}
	return groups
}
