package allocator

import (
	"math"
)

// The decomposition solves the coupled resources exactly.
//
// Pricing the limits at lam >= 0 (one price per limit that can bind) splits
// the problem by service: the Lagrangian dual function
//
//	g(lam) = sum_r lam_r*L_r + sum_i max_{a_i feasible} [F_i(a_i) - lam·a_i]
//
// is convex and piecewise linear, every g(lam) bounds the optimum from above
// (weak duality), and its minimum equals the optimum (LP strong duality).
// Evaluating g is cheap: uncoupled segments are summed by binary search over
// slopes sorted once, and each coupled service answers in closed form
// (respondPair) or picks the best of its few vertices (vertices).
//
// g is minimised over at most three prices by Kelley's cutting planes, whose
// master problem is solved in its Dantzig-Wolfe form: choose weights w_k >= 0
// summing to 1 over the responses found so far (one per evaluation of g) to
// maximise sum_k w_k*value_k with sum_k w_k*usage_k <= L. Its dual values
// are the next prices to try; its value is a lower bound on the optimum once
// it uses no purchased capacity (see below). Because every service's
// feasible set is convex and F is concave, the weighted mix of responses is
// a feasible allocation worth at least the master value, so when the master
// value meets the best upper bound g(lam_k) the mix is optimal: a duality-gap
// certificate, checked on the final allocation itself. g has finitely many
// pieces, so the method ends; in practice it takes a few dozen evaluations.
//
// The master may buy capacity at a price M_r above any price an optimal
// solution needs (columns z_r); this keeps it feasible from the first
// iteration. A final master that still buys capacity had M too small: M
// grows and the method continues.
type decomposer struct {
	md   *model
	dims []int // the limits that can bind among the coupled resources
	// coupled lists the services with couplings.
	coupled []int32
	// agg holds, per coupled resource, the segments of services that do
	// not couple it, with positive net slope, sorted; aggBase is those
	// services' minimums.
	agg     [R]*sortedSegments
	aggBase [R]float64
	// verts holds the vertices of each service with several couplings.
	verts [][]vertex
	// valueScale is the total positive value within reach (segments cut
	// at top), for tolerances.
	valueScale float64
}

// response is one evaluation of the dual function.
type response struct {
	lam   [R]float64
	usage [R]float64
	value float64
}

// dual returns g at the response's prices.
func (d *decomposer) dual(c *response) float64 {
	g := c.value
	for _, r := range d.dims {
		g += c.lam[r] * (d.md.limit[r] - c.usage[r])
	}
	return g
}

func newDecomposer(md *model) *decomposer {
	d := &decomposer{md: md}
	for r := range R {
		if md.coupledRes&(1<<r) != 0 && md.bindable[r] {
			d.dims = append(d.dims, r)
		}
	}
	var segs [R][]int32
	var lens [R][]float64
	d.verts = make([][]vertex, md.n)
	for i := range md.n {
		if md.mask[i] != 0 {
			d.coupled = append(d.coupled, int32(i))
		}
		if len(md.cpl[i]) > 1 {
			d.verts[i] = md.vertices(i, md.mask[i], md.tops(i))
		}
		for r := range R {
			if md.coupledRes&(1<<r) == 0 {
				continue
			}
			ir := i*R + r
			if md.mask[i]&(1<<r) != 0 {
				d.valueScale += md.reachableValue(ir)
				continue
			}
			d.aggBase[r] += md.min[ir]
			from := len(segs[r])
			segs[r], lens[r] = md.usable(ir, segs[r], lens[r])
			for k, j := range segs[r][from:] {
				d.valueScale += md.segSlope[j] * lens[r][from+k]
			}
		}
	}
	for r := range R {
		if md.coupledRes&(1<<r) != 0 {
			d.agg[r] = md.sortSegments(segs[r], lens[r])
		}
	}
	return d
}

// evaluate computes the responses at lam: total usage and value of the
// coupled resources.
func (d *decomposer) evaluate(lam [R]float64) response {
	md := d.md
	c := response{lam: lam}
	for r := range R {
		if ss := d.agg[r]; ss != nil {
			k := ss.above(lam[r])
			c.usage[r] += d.aggBase[r] + ss.cumLen[k]
			c.value += ss.cumLenS[k]
		}
	}
	var out [R]float64
	for _, i := range d.coupled {
		c.value += d.respond(int(i), &lam, &out)
		for r := range R {
			if md.mask[i]&(1<<r) != 0 {
				c.usage[r] += out[r]
			}
		}
	}
	return c
}

// priceBound returns, per resource, a price above what an optimal dual
// needs: twice the most one more unit can be worth to any service, counting
// what it frees through couplings.
func (d *decomposer) priceBound() [R]float64 {
	md := d.md
	var bound [R]float64
	total := 0.0
	for i := range md.n {
		var mv [R]float64
		for r := range R {
			mv[r] = firstSlope(md, i*R+r)
		}
		// One unit of a lets the service hold 1/ratio more of b.
		for range R {
			for _, c := range md.cpl[i] {
				mv[c.a] = math.Max(mv[c.a], firstSlope(md, i*R+c.a)+mv[c.b]/c.ratio)
			}
		}
		for r := range R {
			bound[r] = math.Max(bound[r], mv[r])
			total += mv[r]
		}
	}
	for r := range R {
		bound[r] = 2*bound[r] + 1e-12*total + 1e-300
	}
	return bound
}

func firstSlope(md *model, ir int) float64 {
	if md.off[ir] < md.off[ir+1] {
		return math.Max(0, md.segSlope[md.off[ir]])
	}
	return 0
}

// maxMasterIterations bounds the cutting-plane iterations; the method ends
// long before on any problem seen (a few dozen), the bound only guards
// against a numerical stall.
const maxMasterIterations = 1000

// decomposition is the outcome of the decomposition.
type decomposition struct {
	iterations int
	upper      float64 // best upper bound min_k g(lam_k)
	lam        [R]float64
	// failed reports that the master LP broke down: the allocation was
	// not assembled.
	failed bool
}

// solve runs the decomposition and adds the optimal amounts of the coupled
// resources into alloc (which holds zeros for them on entry).
func (d *decomposer) solve(alloc []float64) decomposition {
	md := d.md
	var zero [R]float64
	first := d.evaluate(zero)
	// Limits get a relative slack of 1e-12: responses at the cap sum the
	// least amounts in another order than the room was computed, so a
	// limit the minimums fill exactly is met only to rounding.
	var capacity [R]float64
	feasible := true
	for _, r := range d.dims {
		capacity[r] = md.limit[r] + 1e-12*max(1, md.limit[r])
		feasible = feasible && first.usage[r] <= capacity[r]
	}
	if feasible {
		// Prices of zero give an allocation within the limits: it is
		// optimal, since g(0) equals its value.
		d.assemble(alloc, []response{first}, []float64{1})
		return decomposition{iterations: 1, upper: first.value}
	}
	nd := len(d.dims)
	bound := d.priceBound()
	rhs := make([]float64, nd+1)
	for k, r := range d.dims {
		rhs[k] = capacity[r]
	}
	rhs[nd] = 1
	lp := newSmallLP(rhs)
	col := make([]float64, nd+1)
	slack := make([]int, nd)
	buy := make([]int, nd)
	for k, r := range d.dims {
		clear(col)
		col[k] = 1
		slack[k] = lp.add(col, 0)
		col[k] = -1
		buy[k] = lp.add(col, -bound[r])
	}
	var cuts []response
	var cutCol []int
	addCut := func(c response) int {
		for k, r := range d.dims {
			col[k] = c.usage[r]
		}
		col[nd] = 1
		cuts = append(cuts, c)
		j := lp.add(col, c.value)
		cutCol = append(cutCol, j)
		return j
	}
	j0 := addCut(first)
	basis := []int{}
	for k, r := range d.dims {
		if first.usage[r] <= capacity[r] {
			basis = append(basis, slack[k])
		} else {
			basis = append(basis, buy[k])
		}
	}
	basis = append(basis, j0)
	if err := lp.start(basis); err != nil {
		return decomposition{failed: true}
	}
	upper := d.dual(&first)
	// The response at the price bound uses the least of every limited
	// resource; it caps the master from the start.
	var top [R]float64
	for _, r := range d.dims {
		top[r] = bound[r]
	}
	c := d.evaluate(top)
	upper = math.Min(upper, d.dual(&c))
	addCut(c)

	out := decomposition{}
	var prev [R]float64
	raised := 0
	for it := 0; it < maxMasterIterations; it++ {
		out.iterations = it + 2
		if err := lp.solve(10000); err != nil {
			return decomposition{failed: true}
		}
		lower := lp.value()
		var lam [R]float64
		for k, r := range d.dims {
			lam[r] = math.Min(math.Max(lp.y[k], 0), bound[r])
		}
		tol := 1e-12*d.valueScale + 1e-11*math.Abs(upper)
		if upper-lower <= tol {
			// Capacity bought in amounts below rounding (a limit equal to
			// the least need, summed in another order) does not count.
			buying := false
			for k, r := range d.dims {
				buying = buying || lp.basicValue(buy[k]) > 1e-11*math.Max(1, md.limit[r])
			}
			if !buying {
				break
			}
			// The master needs capacity beyond the limits at price M:
			// M was too small for an optimal dual. Raise it.
			if raised++; raised > 40 {
				break
			}
			for k, r := range d.dims {
				bound[r] *= 4
				lp.cost[buy[k]] = -bound[r]
			}
			if err := lp.factor(); err != nil {
				return decomposition{failed: true}
			}
			continue
		}
		if it > 0 && lam == prev {
			// The master repeats itself: numerically stalled. The caller's
			// certificate decides whether the gap left is small enough.
			break
		}
		prev = lam
		c := d.evaluate(lam)
		upper = math.Min(upper, d.dual(&c))
		addCut(c)
	}
	out.upper = upper
	var used []response
	var weights []float64
	for k, j := range cutCol {
		if w := lp.basicValue(j); w > 0 {
			used = append(used, cuts[k])
			weights = append(weights, w)
		}
	}
	for k, r := range d.dims {
		out.lam[r] = math.Max(lp.y[k], 0)
	}
	d.assemble(alloc, used, weights)
	return out
}

// assemble adds the weighted mix of responses into alloc: each coupled
// service's responses recomputed at the stored prices, and each uncoupled
// segment's fill (full where its slope exceeds the price).
func (d *decomposer) assemble(alloc []float64, used []response, weights []float64) {
	md := d.md
	total := 0.0
	for _, w := range weights {
		total += w
	}
	var out [R]float64
	for k := range used {
		w := weights[k] / total
		for _, i := range d.coupled {
			d.respond(int(i), &used[k].lam, &out)
			for r := range R {
				if md.mask[i]&(1<<r) != 0 {
					alloc[int(i)*R+r] += w * out[r]
				}
			}
		}
	}
	for r := range R {
		ss := d.agg[r]
		if ss == nil {
			continue
		}
		for i := range md.n {
			if md.mask[i]&(1<<r) == 0 {
				alloc[i*R+r] += md.min[i*R+r]
			}
		}
		for k := range used {
			w := weights[k] / total
			top := ss.above(used[k].lam[r])
			for q, j := range ss.idx[:top] {
				alloc[md.segOwner[j]] += w * ss.length[q]
			}
		}
	}
}
