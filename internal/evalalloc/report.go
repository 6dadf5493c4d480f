package evalalloc

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is the outcome of an evaluation: the trace and one evaluation per
// seed.
type Report struct {
	Trace       TraceSummary `json:"trace"`
	Evaluations []Evaluation `json:"evaluations"`
}

// TraceSummary says what was read and how it was split.
type TraceSummary struct {
	Dir       string `json:"dir"`
	Files     int    `json:"files"`
	Rows      int64  `json:"rows"`
	Malformed int    `json:"malformed_rows"`
	// Repeated counts rows identical to an earlier row of their file,
	// skipped by the reader.
	Repeated int `json:"repeated_rows"`
	// Collisions counts samples dropped because an earlier sample of the
	// same VM fell in the same interval.
	Collisions int       `json:"samples_in_filled_interval"`
	VMs        int       `json:"vms_evaluated"`
	Skipped    []Skipped `json:"vms_skipped"`
	// TrainStart is the trace's first timestamp; the training window runs
	// to TestStart, the held-out window from TestStart to TestEnd.
	TrainStart time.Time `json:"train_start"`
	TestStart  time.Time `json:"test_start"`
	TestEnd    time.Time `json:"test_end"`
	LastSample time.Time `json:"last_sample"`
	// TrainIntervals and TestIntervals count the windows' intervals: the
	// trace's sampling rounds, about 288 a day.
	TrainIntervals int     `json:"train_intervals"`
	TestIntervals  int     `json:"test_intervals"`
	IntervalSec    int     `json:"interval_seconds"`
	TrainDays      int     `json:"train_days"`
	TestDays       int     `json:"test_days"`
	GroupSize      int     `json:"group_size"`
	LimitFactor    float64 `json:"limit_factor"`
	TargetOverrun  float64 `json:"target_overrun"`
}

// Skipped is a VM left out, and why.
type Skipped struct {
	VM     string `json:"vm"`
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// Evaluation is the outcome for one seed.
type Evaluation struct {
	Seed uint64 `json:"seed"`
	// Evaluated counts the compositions evaluated, VMs their VMs, MinSize
	// and MaxSize the fewest and most VMs of one.
	Evaluated int `json:"compositions_evaluated"`
	VMs       int `json:"vms"`
	MinSize   int `json:"min_size"`
	MaxSize   int `json:"max_size"`
	// Strategies holds the held-out metrics of each strategy, over every
	// composition.
	Strategies []StrategySummary `json:"strategies"`
	// Comparison compares ours with vpa on the composition total.
	Comparison []Comparison `json:"ours_vs_vpa"`
	// Frontier holds ours replayed at each of FrontierTargets: for a
	// static allocation, a composition's total overrun and total slack
	// both follow from its total allocation alone, so this curve is the
	// trade-off ours offers, against which vpa's point can be read.
	Frontier     []FrontierPoint     `json:"ours_frontier"`
	Compositions []CompositionReport `json:"compositions"`
}

// StrategySummary is one strategy's held-out metrics per resource.
type StrategySummary struct {
	Strategy  string            `json:"strategy"`
	Resources []ResourceSummary `json:"resources"`
}

// ResourceSummary is a strategy's held-out metrics for one resource over
// every composition. Rates are shares in [0, 1].
type ResourceSummary struct {
	Resource string `json:"resource"`
	// ServiceOverrun and ServiceSlack are over ServiceIntervals (VM,
	// interval) pairs; TotalOverrun and TotalSlack over TotalIntervals
	// (composition, interval) pairs.
	ServiceOverrun   float64 `json:"service_overrun"`
	TotalOverrun     float64 `json:"total_overrun"`
	ServiceSlack     float64 `json:"service_slack"`
	TotalSlack       float64 `json:"total_slack"`
	ServiceIntervals int     `json:"service_intervals"`
	TotalIntervals   int     `json:"total_intervals"`
	// AllocatedPerLimit is the allocations' sum over all compositions
	// divided by the limits' sum.
	AllocatedPerLimit float64 `json:"allocated_per_limit"`
	// CompositionsOverLimit counts compositions whose allocation exceeds
	// the limit (provisioned only: the others are kept within it);
	// CompositionsScaled those where vpa was scaled down to it.
	CompositionsOverLimit int `json:"compositions_over_limit"`
	CompositionsScaled    int `json:"compositions_scaled"`
}

// FrontierPoint is ours' held-out metrics at one target overrun.
type FrontierPoint struct {
	Target    float64           `json:"target_overrun"`
	Resources []ResourceSummary `json:"resources"`
}

// Comparison compares ours with vpa on one resource's composition total.
type Comparison struct {
	Resource      string `json:"resource"`
	FewerOverruns bool   `json:"fewer_overruns"`
	NoMoreSlack   bool   `json:"no_more_slack"`
	// Better is FewerOverruns && NoMoreSlack.
	Better bool `json:"better"`
}

// CompositionReport is one composition: its VMs and every strategy's
// allocation and held-out totals.
type CompositionReport struct {
	Name           string   `json:"name"`
	VMs            []string `json:"vms"`
	TrainIntervals int      `json:"train_intervals"`
	TestIntervals  int      `json:"test_intervals"`
	// Excluded says why the composition was not evaluated; "" when it was.
	Excluded   string               `json:"excluded,omitempty"`
	Strategies []StrategyAllocation `json:"strategies"`
}

// StrategyAllocation is one strategy's allocation of a composition.
type StrategyAllocation struct {
	Strategy  string               `json:"strategy"`
	Resources []ResourceAllocation `json:"resources"`
}

// ResourceAllocation is one resource's allocation (millicores or bytes)
// in one composition, and its held-out rates.
type ResourceAllocation struct {
	Resource       string    `json:"resource"`
	Limit          float64   `json:"limit"`
	Allocated      float64   `json:"allocated"`
	PerVM          []float64 `json:"per_vm"`
	OverLimit      bool      `json:"over_limit"`
	Scaled         bool      `json:"scaled"`
	ServiceOverrun float64   `json:"service_overrun"`
	TotalOverrun   float64   `json:"total_overrun"`
	ServiceSlack   float64   `json:"service_slack"`
	TotalSlack     float64   `json:"total_slack"`
}

// compare compares ours with vpa per resource.
func compare(ev *Evaluation) []Comparison {
	var out []Comparison
	for r := range numResources {
		v, o := ev.Strategies[stVPA].Resources[r], ev.Strategies[stOurs].Resources[r]
		c := Comparison{Resource: Resource(r).String(), FewerOverruns: o.TotalOverrun < v.TotalOverrun, NoMoreSlack: o.TotalSlack <= v.TotalSlack}
		c.Better = c.FewerOverruns && c.NoMoreSlack
		out = append(out, c)
	}
	return out
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r as tables.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	t := r.Trace
	fmt.Fprintf(&b, "Allocation strategies on the Bitbrains GWA-T-12 Rnd trace (Grid Workloads Archive, TU Delft; Shen, van Beek, Iosup, CCGrid 2015)\n\n")
	fmt.Fprintf(&b, "trace     %s: %d files, %s rows", t.Dir, t.Files, thousands(t.Rows))
	var notes []string
	if t.Malformed > 0 {
		notes = append(notes, fmt.Sprintf("%s malformed", thousands(int64(t.Malformed))))
	}
	if t.Repeated > 0 {
		notes = append(notes, fmt.Sprintf("%s repeating earlier rows", thousands(int64(t.Repeated))))
	}
	if t.Collisions > 0 {
		notes = append(notes, fmt.Sprintf("%s in an interval already filled", thousands(int64(t.Collisions))))
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (skipped: %s)", strings.Join(notes, ", "))
	}
	fmt.Fprintf(&b, "\nwindows   training %s + %d days, held out %s + %d days, %d-minute intervals (last sample %s)\n",
		t.TrainStart.Format(timeLayout), t.TrainDays, t.TestStart.Format(timeLayout), t.TestDays, t.IntervalSec/60, t.LastSample.Format(timeLayout))
	fmt.Fprintf(&b, "VMs       %d evaluated", t.VMs)
	if len(t.Skipped) > 0 {
		names := make([]string, len(t.Skipped))
		for i, s := range t.Skipped {
			names[i] = s.VM
		}
		fmt.Fprintf(&b, ", %d skipped for too little data in a window: %s", len(t.Skipped), strings.Join(names, ", "))
	}
	fmt.Fprintf(&b, "\nlimit     per composition and resource: %s × the peak of its training-window total\n", formatFloat(t.LimitFactor))
	fmt.Fprintf(&b, "strategy  provisioned: the VM's capacity, as is (flagged over the limit)\n")
	fmt.Fprintf(&b, "          vpa: p90 of the VM's training usage + 15%%, scaled down proportionally to fit the limit\n")
	fmt.Fprintf(&b, "          ours: budget = p%s of the composition's training total (within the limit), split by allocator.Allocate, value = P(usage > a)\n",
		formatFloat(100*(1-t.TargetOverrun)))
	fmt.Fprintf(&b, "metrics   overrun: share of intervals where usage > allocation; slack: (allocation - usage) / allocation, 0 in an overrun;\n")
	fmt.Fprintf(&b, "          service: per (VM, interval); total: per (composition, interval), summed over the composition's VMs\n")
	for _, ev := range r.Evaluations {
		writeEvaluation(&b, &ev)
	}
	if len(r.Evaluations) > 1 {
		writeSeeds(&b, r.Evaluations)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeEvaluation(b *strings.Builder, ev *Evaluation) {
	size := strconv.Itoa(ev.MinSize)
	if ev.MaxSize != ev.MinSize {
		size += "–" + strconv.Itoa(ev.MaxSize)
	}
	fmt.Fprintf(b, "\nseed %d: %d %s of %s %s (%d %s)", ev.Seed, ev.Evaluated, plural(ev.Evaluated, "composition", "compositions"),
		size, plural(ev.MaxSize, "VM", "VMs"), ev.VMs, plural(ev.VMs, "VM", "VMs"))
	if excluded := len(ev.Compositions) - ev.Evaluated; excluded > 0 {
		fmt.Fprintf(b, ", %d excluded (no interval in which all their VMs have data)", excluded)
	}
	if len(ev.Strategies) > 0 && len(ev.Strategies[0].Resources) > 0 {
		rs := ev.Strategies[0].Resources[0]
		fmt.Fprintf(b, "; held out: %s VM-intervals, %s composition-intervals",
			thousands(int64(rs.ServiceIntervals)), thousands(int64(rs.TotalIntervals)))
	}
	b.WriteString("\n\n")
	t := table{align: "llrrrrrl"}
	t.add("resource", "strategy", "service overrun", "total overrun", "service slack", "total slack", "allocated/limit", "")
	for r := range numResources {
		for _, s := range ev.Strategies {
			rs := s.Resources[r]
			note := ""
			switch {
			case rs.CompositionsOverLimit > 0:
				note = fmt.Sprintf("over the limit in %d of %d compositions", rs.CompositionsOverLimit, ev.Evaluated)
			case rs.CompositionsScaled > 0:
				note = fmt.Sprintf("scaled down to the limit in %d of %d", rs.CompositionsScaled, ev.Evaluated)
			}
			t.add(rs.Resource, s.Strategy, percent(rs.ServiceOverrun), percent(rs.TotalOverrun),
				percent(rs.ServiceSlack), percent(rs.TotalSlack), fmt.Sprintf("%.2f", rs.AllocatedPerLimit), note)
		}
	}
	t.write(b)
	var parts []string
	for r, c := range ev.Comparison {
		v, o := ev.Strategies[stVPA].Resources[r], ev.Strategies[stOurs].Resources[r]
		parts = append(parts, fmt.Sprintf("%s %s (overrun %s vs %s, slack %s vs %s)", c.Resource, yesNo(c.Better),
			percent(o.TotalOverrun), percent(v.TotalOverrun), percent(o.TotalSlack), percent(v.TotalSlack)))
	}
	fmt.Fprintf(b, "\nours vs vpa, composition total, fewer overruns at no more slack: %s\n", strings.Join(parts, "; "))
	if len(ev.Frontier) == 0 {
		return
	}
	b.WriteString("\nours at other targets, composition total (overrun / slack):\n\n")
	t = table{align: "lrr"}
	t.add("target", "cpu", "memory")
	cell := func(rs ResourceSummary) string { return percent(rs.TotalOverrun) + " / " + percent(rs.TotalSlack) }
	for _, p := range ev.Frontier {
		t.add("p"+formatFloat(100*(1-p.Target)), cell(p.Resources[CPU]), cell(p.Resources[Memory]))
	}
	t.add("vpa", cell(ev.Strategies[stVPA].Resources[CPU]), cell(ev.Strategies[stVPA].Resources[Memory]))
	t.write(b)
}

func writeSeeds(b *strings.Builder, evs []Evaluation) {
	b.WriteString("\nacross seeds, composition total, ours vs vpa:\n\n")
	t := table{align: "rlrrrrl"}
	t.add("seed", "resource", "vpa overrun", "ours overrun", "vpa slack", "ours slack", "ours better on both")
	wins := make([]int, numResources)
	for _, ev := range evs {
		for r, c := range ev.Comparison {
			v, o := ev.Strategies[stVPA].Resources[r], ev.Strategies[stOurs].Resources[r]
			if c.Better {
				wins[r]++
			}
			t.add(strconv.FormatUint(ev.Seed, 10), c.Resource, percent(v.TotalOverrun), percent(o.TotalOverrun),
				percent(v.TotalSlack), percent(o.TotalSlack), yesNo(c.Better))
		}
	}
	t.write(b)
	var parts []string
	for r := range numResources {
		parts = append(parts, fmt.Sprintf("%s %d of %d", Resource(r), wins[r], len(evs)))
	}
	fmt.Fprintf(b, "\nours better on both: %s seeds\n", strings.Join(parts, ", "))
}

// table lays out rows in columns two spaces apart, each aligned left (l)
// or right (r), without trailing spaces.
type table struct {
	align string
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	widths := make([]int, len(t.align))
	for _, row := range t.rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range t.rows {
		var line strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if t.align[i] == 'r' {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func percent(x float64) string { return strconv.FormatFloat(100*x, 'f', 2, 64) + "%" }

// formatFloat formats x to at most six decimals, without trailing zeros.
func formatFloat(x float64) string {
	return strconv.FormatFloat(math.Round(x*1e6)/1e6, 'f', -1, 64)
}

// thousands formats n with comma separators: 1,234,567.
func thousands(n int64) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
