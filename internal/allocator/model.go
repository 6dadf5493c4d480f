package allocator

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// R is NumResources, short for the many arrays below.
const R = NumResources

// model is a validated problem in the form the solvers work on. Each
// resource is scaled by a power of two (exact in floating point) so that its
// limit, or the largest desired amount if the limit cannot bind, lies in
// [1, 2); slopes are net of cost and scaled the other way, so values are
// unchanged. Segments of zero length are dropped, so the slopes left are
// non-increasing.
type model struct {
	n     int
	scale [R]float64 // base units per model unit
	limit [R]float64 // scaled limit; +Inf when there is none
	// bindable reports whether a limit can bind at all: it is finite and
	// below the total desired amount.
	bindable [R]bool
	// min, max and lb are indexed i*R+r. lb is the least feasible amount:
	// the minimum raised by couplings.
	min, max, lb []float64
	// top is the most a service can get: max, or less where a limit leaves
	// less room above the others' least amounts. It is a valid cut (no
	// feasible allocation exceeds it) that keeps the services' responses to
	// prices, and so every number the solvers combine, within the limits'
	// scale. The value segments themselves are not cut: the shadow prices
	// are those of the problem as given.
	top []float64
	// The segments of service i and resource r are off[i*R+r] up to
	// off[i*R+r+1] in segLen and segSlope.
	off              []int32
	segLen, segSlope []float64
	segOwner         []int32 // i*R+r of each segment
	// cpl holds the couplings of each service that can bind (merged: the
	// largest ratio of a pair), nil for most services.
	cpl [][]coupling
	// mask has bit r set when resource r of service i takes part in one of
	// its couplings.
	mask []uint8
	// coupledRes has bit r set when any service couples resource r.
	coupledRes uint8
}

// coupling is alloc[a] >= ratio*alloc[b] in model units.
type coupling struct {
	a, b  int
	ratio float64
}

// pow2Scale returns the power of two s with x/s in [1, 2), or 1 for 0.
func pow2Scale(x float64) float64 {
	if !(x > 0) {
		return 1
	}
	_, e := math.Frexp(x)
	return math.Ldexp(1, e-1)
}

// newModel builds the model of a valid problem, or returns the
// *InfeasibleError when the minimums cannot be met.
func newModel(p *Problem) (*model, error) {
	n := len(p.Services)
	md := &model{
		n:    n,
		min:  make([]float64, n*R),
		max:  make([]float64, n*R),
		lb:   make([]float64, n*R),
		off:  make([]int32, n*R+1),
		cpl:  make([][]coupling, n),
		mask: make([]uint8, n),
	}
	var maxDesired, sumDesired [R]float64
	nseg := 0
	for i := range p.Services {
		for r := range R {
			d := &p.Services[i].Demand[r]
			maxDesired[r] = math.Max(maxDesired[r], d.Desired)
			sumDesired[r] += d.Desired
			nseg += len(d.Value)
		}
	}
	for r := range R {
		md.bindable[r] = !math.IsInf(p.Limits[r], 1) && p.Limits[r] < sumDesired[r]
		// A limit that can bind sets the scale: every amount that matters
		// is within it, and tolerances become relative to it. Scales stay
		// at or above one base unit (less is as good as nothing), which
		// keeps scaled slopes and ratios finite.
		md.scale[r] = pow2Scale(max(maxDesired[r], 1))
		if md.bindable[r] {
			md.scale[r] = pow2Scale(max(p.Limits[r], 1))
		}
		md.limit[r] = p.Limits[r] / md.scale[r]
	}
	md.segLen = make([]float64, 0, nseg)
	md.segSlope = make([]float64, 0, nseg)
	md.segOwner = make([]int32, 0, nseg)
	for i := range p.Services {
		for r := range R {
			d := &p.Services[i].Demand[r]
			s := md.scale[r]
			ir := i*R + r
			md.min[ir], md.max[ir] = d.Min/s, d.Desired/s
			// Breakpoints are accumulated in base units and clamped to
			// Desired, so the last one is Desired exactly whatever the
			// rounding of the lengths.
			cum, prev := d.Min, d.Min
			for _, sg := range d.Value {
				cum += sg.Length
				next := math.Min(cum, d.Desired)
				if next > prev {
					md.segLen = append(md.segLen, (next-prev)/s)
					md.segSlope = append(md.segSlope, (sg.Slope-p.Costs[r])*s)
					md.segOwner = append(md.segOwner, int32(ir))
					prev = next
				}
			}
			switch {
			case len(md.segLen) == int(md.off[ir]):
				// No value above the minimum (validation allows this only
				// when Desired-Min is negligible): nothing to allocate.
				md.max[ir] = md.min[ir]
			case prev < d.Desired:
				// Lengths short of the span by rounding: stretch the last.
				md.segLen[len(md.segLen)-1] += (d.Desired - prev) / s
			}
			md.off[ir+1] = int32(len(md.segLen))
		}
	}
	for i := range p.Services {
		md.addCouplings(i, p.Services[i].Couplings)
	}
	if err := md.raiseMinimums(p); err != nil {
		return nil, err
	}
	md.top = append([]float64(nil), md.max...)
	for r := range R {
		if !md.bindable[r] {
			continue
		}
		room := md.limit[r]
		for i := range md.n {
			room -= md.lb[i*R+r]
		}
		room = max(room, 0)
		for i := range md.n {
			ir := i*R + r
			md.top[ir] = max(min(md.max[ir], md.lb[ir]+room), md.lb[ir])
		}
	}
	return md, nil
}

// addCouplings keeps the couplings of service i that can bind: a >= ratio*b
// cannot bind when the minimum of a already covers ratio times the most b
// can get.
func (md *model) addCouplings(i int, cs []Coupling) {
	for _, c := range cs {
		a, b := int(c.Resource), int(c.PerUnitOf)
		ratio := c.Ratio * md.scale[b] / md.scale[a]
		if md.min[i*R+a] >= ratio*md.max[i*R+b] {
			continue
		}
		merged := false
		for j := range md.cpl[i] {
			if md.cpl[i][j].a == a && md.cpl[i][j].b == b {
				md.cpl[i][j].ratio = math.Max(md.cpl[i][j].ratio, ratio)
				merged = true
			}
		}
		if !merged {
			md.cpl[i] = append(md.cpl[i], coupling{a: a, b: b, ratio: ratio})
			md.mask[i] |= 1<<a | 1<<b
		}
	}
	md.coupledRes |= md.mask[i]
}

// raiseMinimums computes lb, the least amounts that satisfy the couplings,
// and reports what cannot be met: a service whose couplings push a resource
// above its desired amount, or a limit below the total need at minimums.
//
// Every feasible allocation is at least lb (by induction over the coupling
// chains) and lb itself is feasible for its service when it stays within the
// desired amounts, so the problem is feasible exactly when that holds and
// the lb totals fit the limits.
func (md *model) raiseMinimums(p *Problem) error {
	copy(md.lb, md.min)
	var unsat []Unsatisfiable
	for i := range md.n {
		cs := md.cpl[i]
		if len(cs) == 0 {
			continue
		}
		lb := md.lb[i*R : i*R+R]
		// w[a][b] is the largest product of ratios along a chain of
		// couplings from b up to a (Floyd-Warshall in max-times algebra):
		// amount a >= w[a][b] * amount b for every feasible allocation, so
		// lb[a] = max_b w[a][b]*min[b] (with w[a][a] = 1), and that point is
		// itself feasible. A cycle whose ratios multiply above one allows
		// only zero for every resource on it and every resource it holds
		// up.
		var w [R][R]float64
		for r := range R {
			w[r][r] = 1
		}
		for _, c := range cs {
			w[c.a][c.b] = max(w[c.a][c.b], c.ratio)
		}
		for k := range R {
			for a := range R {
				for b := range R {
					w[a][b] = max(w[a][b], w[a][k]*w[k][b])
				}
			}
		}
		for a := range R {
			lb[a] = 0
			for b := range R {
				lb[a] = max(lb[a], w[a][b]*md.min[i*R+b])
			}
		}
		var zero [R]bool
		for r := range R {
			if w[r][r] <= 1+1e-9 {
				continue
			}
			for b := range R {
				if w[r][b] == 0 || zero[b] {
					continue
				}
				zero[b] = true
				ib := i*R + b
				if md.min[ib] > 0 {
					unsat = append(unsat, Unsatisfiable{
						Service: i, Name: p.Services[i].Name, Resource: Resource(b),
						Need: p.Services[i].Demand[b].Min, Desired: 0,
					})
				}
				// Only zero is feasible.
				md.max[ib], lb[b] = md.min[ib], md.min[ib]
			}
		}
		for r := range R {
			ir := i*R + r
			if lb[r] > md.max[ir]*(1+1e-12) {
				unsat = append(unsat, Unsatisfiable{
					Service: i, Name: p.Services[i].Name, Resource: Resource(r),
					Need: lb[r] * md.scale[r], Desired: p.Services[i].Demand[r].Desired,
				})
			}
			lb[r] = math.Min(lb[r], md.max[ir])
		}
	}
	var short []Insufficient
	for r := range R {
		if math.IsInf(p.Limits[r], 1) {
			continue
		}
		// Sum in base units: declared minimums add up exactly (integral
		// ones certainly); only minimums a coupling raised (computed, so
		// rounded) get a relative slack.
		total, raised := 0.0, 0.0
		for i := range md.n {
			v := md.lbUnits(p, i, r)
			total += v
			if md.lb[i*R+r] != md.min[i*R+r] {
				raised += v
			}
		}
		if total <= p.Limits[r]+1e-12*raised {
			continue
		}
		needs := make([]Need, md.n)
		for i := range md.n {
			needs[i] = Need{Service: i, Name: p.Services[i].Name, Amount: md.lbUnits(p, i, r)}
		}
		short = append(short, Insufficient{
			Resource: Resource(r), Reason: "Insufficient " + Resource(r).String(),
			Requested: total, Capacity: p.Limits[r], Shortfall: total - p.Limits[r],
			Largest: largestNeeds(needs),
		})
	}
	if len(unsat) > 0 || len(short) > 0 {
		return newInfeasibleError(short, unsat)
	}
	return nil
}

// lbUnits returns lb in base units, the declared minimum where no coupling
// raised it.
func (md *model) lbUnits(p *Problem, i, r int) float64 {
	ir := i*R + r
	if md.lb[ir] == md.min[ir] {
		return p.Services[i].Demand[r].Min
	}
	return md.lb[ir] * md.scale[r]
}

// value returns F(a): the net value of amount a of service/resource ir,
// summed over the segments above the minimum.
func (md *model) value(ir int, a float64) float64 {
	v, bp := 0.0, md.min[ir]
	for k := md.off[ir]; k < md.off[ir+1]; k++ {
		l := md.segLen[k]
		if a <= bp {
			break
		}
		v += md.segSlope[k] * min(a-bp, l)
		bp += l
	}
	return v
}

// best returns the least maximiser of F(a) - price*a over [min, top] and
// its F: every segment whose net slope exceeds price is filled. With
// inclusive set, segments whose slope equals price are filled too, giving
// the greatest maximiser.
func (md *model) best(ir int, price float64, inclusive bool) (a, v float64) {
	a, top := md.min[ir], md.top[ir]
	for k := md.off[ir]; k < md.off[ir+1] && a < top; k++ {
		s := md.segSlope[k]
		if s < price || (s == price && !inclusive) {
			break
		}
		l := min(md.segLen[k], top-a)
		a += l
		v += s * l
	}
	return min(a, top), v
}

// bestRange returns the least and the greatest maximisers of
// F(a) - price*a over [min, top], and F at the least.
func (md *model) bestRange(ir int, price float64) (lo, hi, v float64) {
	a, top := md.min[ir], md.top[ir]
	k, end := md.off[ir], md.off[ir+1]
	for ; k < end && a < top && md.segSlope[k] > price; k++ {
		l := min(md.segLen[k], top-a)
		a += l
		v += md.segSlope[k] * l
	}
	lo = a
	for ; k < end && a < top && md.segSlope[k] == price; k++ {
		a += md.segLen[k]
	}
	return min(lo, top), min(a, top), v
}

// objective returns the net value of an allocation (model units).
func (md *model) objective(alloc []float64) float64 {
	total := 0.0
	for ir := range alloc {
		total += md.value(ir, alloc[ir])
	}
	return total
}

// sortedSegments is a resource's segments sorted by net slope, largest
// first, with prefix sums of length and of length*slope: the sum of the
// separable parts of the dual function at any price is then a binary search.
// Lengths are those a service can use (segments cut at top).
type sortedSegments struct {
	slope   []float64
	length  []float64
	idx     []int32   // index into model.segLen
	cumLen  []float64 // cumLen[k] = sum of lengths of the first k
	cumLenS []float64
}

// usable returns the segments of ir cut at top, with positive slope and
// length, appending their indices and usable lengths.
func (md *model) usable(ir int, idx []int32, length []float64) ([]int32, []float64) {
	bp, top := md.min[ir], md.top[ir]
	for k := md.off[ir]; k < md.off[ir+1] && bp < top; k++ {
		l := min(md.segLen[k], top-bp)
		if md.segSlope[k] > 0 && l > 0 {
			idx, length = append(idx, k), append(length, l)
		}
		bp += md.segLen[k]
	}
	return idx, length
}

// reachableValue returns the value of the positive segments of ir, cut at
// top.
func (md *model) reachableValue(ir int) float64 {
	v, bp, top := 0.0, md.min[ir], md.top[ir]
	for k := md.off[ir]; k < md.off[ir+1] && bp < top; k++ {
		if s := md.segSlope[k]; s > 0 {
			v += s * min(md.segLen[k], top-bp)
		}
		bp += md.segLen[k]
	}
	return v
}

func (md *model) sortSegments(segs []int32, lengths []float64) *sortedSegments {
	type entry struct {
		slope, length float64
		idx           int32
	}
	es := make([]entry, len(segs))
	for k, j := range segs {
		es[k] = entry{md.segSlope[j], lengths[k], j}
	}
	slices.SortFunc(es, func(x, y entry) int {
		switch {
		case x.slope > y.slope:
			return -1
		case x.slope < y.slope:
			return 1
		}
		return cmp.Compare(x.idx, y.idx)
	})
	ss := &sortedSegments{
		slope:   make([]float64, len(segs)),
		length:  lengths,
		idx:     segs,
		cumLen:  make([]float64, len(segs)+1),
		cumLenS: make([]float64, len(segs)+1),
	}
	for k, e := range es {
		segs[k], lengths[k], ss.slope[k] = e.idx, e.length, e.slope
		ss.cumLen[k+1] = ss.cumLen[k] + e.length
		ss.cumLenS[k+1] = ss.cumLenS[k] + e.length*e.slope
	}
	return ss
}

// above returns how many segments have a slope strictly above price.
func (ss *sortedSegments) above(price float64) int {
	return sort.Search(len(ss.slope), func(k int) bool { return ss.slope[k] <= price })
}
