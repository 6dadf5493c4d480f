package evalalloc

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/snapcompose/snapcompose/internal/allocator"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// composition is one group of VMs being evaluated.
type composition struct {
	name string
	vms  []*vm
	// trainTotal holds each resource's total usage in the training
	// intervals in which every VM has data, sorted.
	trainTotal [numResources][]float64
	// testIntervals lists the held-out intervals in which every VM has
	// data, as grid indexes.
	testIntervals []int
}

// allocation is one strategy's amounts per resource and VM.
type allocation [numResources][]float64

// FrontierTargets are the targets at which an evaluation also replays
// ours, to show its trade-off between total overrun and total slack.
var FrontierTargets = []float64{0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2}

// evaluate runs one seed.
func evaluate(tr *trace, cfg Config, seed uint64) (*Evaluation, error) {
	ev := &Evaluation{Seed: seed, Compositions: []CompositionReport{}}
	var comps []*composition
	var limits [][numResources]float64
	for gi, members := range Groups(len(tr.vms), cfg.GroupSize, seed) {
		c := &composition{name: fmt.Sprintf("c%d", gi+1)}
		for _, i := range members {
			c.vms = append(c.vms, tr.vms[i])
		}
		c.tally(tr)
		cr := CompositionReport{Name: c.name, TrainIntervals: len(c.trainTotal[CPU]), TestIntervals: len(c.testIntervals), Strategies: []StrategyAllocation{}}
		for _, v := range c.vms {
			cr.VMs = append(cr.VMs, v.name)
		}
		if len(c.trainTotal[CPU]) == 0 || len(c.testIntervals) == 0 {
			cr.Excluded = "no interval in which all its VMs have data, in the training or the held-out window"
			ev.Compositions = append(ev.Compositions, cr)
			continue
		}
		ev.Compositions = append(ev.Compositions, cr)
		comps = append(comps, c)
		var limit [numResources]float64
		for r := range numResources {
			limit[r] = cfg.LimitFactor * c.trainTotal[r][len(c.trainTotal[r])-1]
		}
		limits = append(limits, limit)
		ev.Evaluated++
		ev.VMs += len(c.vms)
		if ev.MinSize == 0 || len(c.vms) < ev.MinSize {
			ev.MinSize = len(c.vms)
		}
		ev.MaxSize = max(ev.MaxSize, len(c.vms))
	}
	if ev.Evaluated == 0 {
		return nil, domain.Errorf(domain.EINVALID,
			"--usage: %s: no composition of seed %d has an interval in which all its VMs have data, in both windows: try a smaller --group-size", cfg.Dir, seed)
	}
	var acc [numStrategies][numResources]tally
	ci := 0
	for i := range ev.Compositions {
		cr := &ev.Compositions[i]
		if cr.Excluded != "" {
			continue
		}
		c, limit := comps[ci], limits[ci]
		ci++
		allocs, scaled, err := c.allocate(limit, cfg.TargetOverrun)
		if err != nil {
			return nil, fmt.Errorf("seed %d, composition %s: %w", seed, c.name, err)
		}
		for s := range numStrategies {
			sa := StrategyAllocation{Strategy: Strategies[s]}
			for r := range numResources {
				a := allocs[s][r]
				t := c.replay(tr, Resource(r), a, limit[r])
				if s == stVPA && scaled[r] {
					t.scaled = 1
				}
				ra := ResourceAllocation{Resource: Resource(r).String(), Limit: limit[r], Allocated: t.allocated, PerVM: a,
					OverLimit: t.overLimit > 0, Scaled: t.scaled > 0}
				ra.TotalOverrun, ra.TotalSlack = t.totalRates()
				ra.ServiceOverrun, ra.ServiceSlack = t.serviceRates()
				acc[s][r].add(t)
				sa.Resources = append(sa.Resources, ra)
			}
			cr.Strategies = append(cr.Strategies, sa)
		}
	}
	for s := range numStrategies {
		sm := StrategySummary{Strategy: Strategies[s]}
		for r := range numResources {
			sm.Resources = append(sm.Resources, acc[s][r].summary(Resource(r)))
		}
		ev.Strategies = append(ev.Strategies, sm)
	}
	ev.Comparison = compare(ev)
	for _, target := range FrontierTargets {
		var acc [numResources]tally
		for i, c := range comps {
			a, err := c.ours(limits[i], target)
			if err != nil {
				return nil, fmt.Errorf("seed %d, composition %s: %w", seed, c.name, err)
			}
			for r := range numResources {
				acc[r].add(c.replay(tr, Resource(r), a[r], limits[i][r]))
			}
		}
		p := FrontierPoint{Target: target}
		for r := range numResources {
			p.Resources = append(p.Resources, acc[r].summary(Resource(r)))
		}
		ev.Frontier = append(ev.Frontier, p)
	}
	return ev, nil
}

// tally finds the intervals in which every VM of c has data, and the
// training totals.
func (c *composition) tally(tr *trace) {
	complete := func(k int) bool {
		for _, v := range c.vms {
			if math.IsNaN(v.usage[CPU][k]) {
				return false
			}
		}
		return true
	}
	for k := range tr.trainN + tr.testN {
		if !complete(k) {
			continue
		}
		if k >= tr.trainN {
			c.testIntervals = append(c.testIntervals, k)
			continue
		}
		for r := range numResources {
			sum := 0.0
			for _, v := range c.vms {
				sum += v.usage[r][k]
			}
			c.trainTotal[r] = append(c.trainTotal[r], sum)
		}
	}
	for r := range numResources {
		slices.Sort(c.trainTotal[r])
	}
}

// allocate computes every strategy's allocation for c under limit, and
// reports per resource whether vpa had to be scaled down to it.
func (c *composition) allocate(limit [numResources]float64, target float64) (allocs [numStrategies]allocation, scaled [numResources]bool, err error) {
	for s := range numStrategies {
		for r := range numResources {
			allocs[s][r] = make([]float64, len(c.vms))
		}
	}
	for i, v := range c.vms {
		for r := range numResources {
			allocs[stProvisioned][r][i] = v.provisioned[r]
			allocs[stVPA][r][i] = vpaMargin * quantile(v.sorted[r], vpaQuantile)
		}
	}
	for r := range numResources {
		scaled[r] = scaleToLimit(allocs[stVPA][r], limit[r])
	}
	allocs[stOurs], err = c.ours(limit, target)
	return allocs, scaled, err
}

// scaleToLimit scales a down by one factor so that its sum is at most
// limit, and reports whether it had to.
func scaleToLimit(a []float64, limit float64) bool {
	sum := sumOf(a)
	if sum <= limit {
		return false
	}
	f := limit / sum
	for i := range a {
		a[i] *= f
	}
	// Rounding must not leave the sum above the limit.
	for sumOf(a) > limit {
		for i := range a {
			a[i] = math.Nextafter(a[i], 0)
		}
	}
	return true
}

// ours computes our allocation: the composition's budget per resource,
// the (1 - target) quantile of its training total capped at the limit,
// split across the VMs by allocator.Allocate with newsvendor values.
func (c *composition) ours(limit [numResources]float64, target float64) (allocation, error) {
	p := &allocator.Problem{Services: make([]allocator.Service, len(c.vms))}
	p.Limits[allocator.CPU] = min(limit[CPU], quantile(c.trainTotal[CPU], 1-target))
	p.Limits[allocator.Memory] = min(limit[Memory], quantile(c.trainTotal[Memory], 1-target))
	p.Limits[allocator.Disk] = math.Inf(1)
	for i, v := range c.vms {
		p.Services[i].Name = v.name
		p.Services[i].Demand[allocator.CPU] = NewsvendorDemand(v.sorted[CPU])
		p.Services[i].Demand[allocator.Memory] = NewsvendorDemand(v.sorted[Memory])
	}
	res, err := allocator.Allocate(p)
	if err != nil {
		return allocation{}, fmt.Errorf("allocating ours: %w", err)
	}
	var out allocation
	for r := range numResources {
		out[r] = make([]float64, len(c.vms))
	}
	for i, a := range res.Services {
		out[CPU][i] = a.Amount[allocator.CPU]
		out[Memory][i] = a.Amount[allocator.Memory]
	}
	// The allocator meets its limits to a relative 1e-9; keep the sums
	// within them exactly.
	scaleToLimit(out[CPU], p.Limits[allocator.CPU])
	scaleToLimit(out[Memory], p.Limits[allocator.Memory])
	return out, nil
}

// demandLevels are the quantiles at which NewsvendorDemand breaks a VM's
// value into segments: finer in the tail, where the budget cuts.
var demandLevels = [...]float64{0.25, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1}

// NewsvendorDemand returns the demand of a VM whose training usage is
// sorted (increasing, non-negative): from 0 to its maximum, valued so that
// the slope of a segment [a, b] is the mean over it of P(usage > x), the
// expected shortfall one more unit there avoids. Its breakpoints are the
// usage's quantiles at demandLevels. The survival function falls, so the
// slopes do too and the value is concave. A VM that never used anything
// demands nothing.
func NewsvendorDemand(sorted []float64) allocator.Demand {
	n := len(sorted)
	if n == 0 || !(sorted[n-1] > 0) {
		return allocator.Demand{}
	}
	prefix := make([]float64, n+1)
	for i, x := range sorted {
		prefix[i+1] = prefix[i] + x
	}
	// meanMin returns E[min(usage, a)].
	meanMin := func(a float64) float64 {
		below := sort.SearchFloat64s(sorted, a) // values < a
		return (prefix[below] + a*float64(n-below)) / float64(n)
	}
	d := allocator.Demand{Desired: sorted[n-1]}
	prevA, prevE := 0.0, 0.0
	for _, level := range demandLevels {
		a := quantile(sorted, level)
		if !(a > prevA) {
			continue
		}
		e := meanMin(a)
		d.Value = append(d.Value, allocator.Segment{Length: a - prevA, Slope: (e - prevE) / (a - prevA)})
		prevA, prevE = a, e
	}
	// Rounding of slopes computed from differences must not make a later
	// one exceed an earlier one.
	for k := 1; k < len(d.Value); k++ {
		d.Value[k].Slope = min(d.Value[k].Slope, d.Value[k-1].Slope)
	}
	return d
}

// tally counts one composition's (or, added up, all compositions')
// replay of one resource under one strategy.
type tally struct {
	servicePairs, serviceOverruns int
	serviceSlack                  float64
	totalIntervals, totalOverruns int
	totalSlack                    float64
	allocated, limit              float64
	overLimit, scaled             int
}

func (t *tally) add(u tally) {
	t.servicePairs += u.servicePairs
	t.serviceOverruns += u.serviceOverruns
	t.serviceSlack += u.serviceSlack
	t.totalIntervals += u.totalIntervals
	t.totalOverruns += u.totalOverruns
	t.totalSlack += u.totalSlack
	t.allocated += u.allocated
	t.limit += u.limit
	t.overLimit += u.overLimit
	t.scaled += u.scaled
}

// summary returns the metrics t counts.
func (t *tally) summary(r Resource) ResourceSummary {
	rs := ResourceSummary{Resource: r.String(), ServiceIntervals: t.servicePairs, TotalIntervals: t.totalIntervals,
		CompositionsOverLimit: t.overLimit, CompositionsScaled: t.scaled}
	rs.ServiceOverrun, rs.ServiceSlack = t.serviceRates()
	rs.TotalOverrun, rs.TotalSlack = t.totalRates()
	if t.limit > 0 {
		rs.AllocatedPerLimit = t.allocated / t.limit
	}
	return rs
}

func (t *tally) serviceRates() (overrun, slack float64) {
	return ratio(float64(t.serviceOverruns), t.servicePairs), ratio(t.serviceSlack, t.servicePairs)
}

func (t *tally) totalRates() (overrun, slack float64) {
	return ratio(float64(t.totalOverruns), t.totalIntervals), ratio(t.totalSlack, t.totalIntervals)
}

func ratio(x float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return x / float64(n)
}

// replay plays c's held-out window of resource r against alloc (one
// amount per VM), under limit.
func (c *composition) replay(tr *trace, r Resource, alloc []float64, limit float64) tally {
	t := tally{allocated: sumOf(alloc), limit: limit}
	if t.allocated > limit {
		t.overLimit = 1
	}
	for i, v := range c.vms {
		for _, u := range v.usage[r][tr.trainN:] {
			if math.IsNaN(u) {
				continue
			}
			over, slack := Score(alloc[i], u)
			t.servicePairs++
			t.serviceOverruns += over
			t.serviceSlack += slack
		}
	}
	total := t.allocated
	for _, k := range c.testIntervals {
		used := 0.0
		for _, v := range c.vms {
			used += v.usage[r][k]
		}
		over, slack := Score(total, used)
		t.totalIntervals++
		t.totalOverruns += over
		t.totalSlack += slack
	}
	return t
}

// Score scores one interval: overrun is 1 when used exceeds allocated;
// slack is (allocated - used) / allocated, 0 in an overrun and where
// nothing is allocated.
func Score(allocated, used float64) (overrun int, slack float64) {
	if used > allocated {
		return 1, 0
	}
	if allocated > 0 {
		return 0, (allocated - used) / allocated
	}
	return 0, 0
}

// sumOf adds a up in order.
func sumOf(a []float64) float64 {
	s := 0.0
	for _, x := range a {
		s += x
	}
	return s
}
