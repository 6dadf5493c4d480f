package allocator

import (
	"cmp"
	"math"
	"slices"
)

// A service's response to prices is its best allocation when every unit of
// resource r costs lam[r] more: it maximises
//
//	sum_r F_r(a_r) - lam[r]*a_r  over  min <= a <= max and its couplings,
//
// a tiny LP. Uncoupled resources are solved by threshold (model.best); the
// functions here solve the coupled resources of one service exactly.

// respond sets out[r] for the coupled resources of service i to an optimal
// response at prices lam and returns their value sum_r F_r(out[r]).
func (d *decomposer) respond(i int, lam *[R]float64, out *[R]float64) float64 {
	md := d.md
	if len(md.cpl[i]) == 1 {
		return md.respondPair(i, md.cpl[i][0], lam, out)
	}
	return pickVertex(d.verts[i], md.mask[i], lam, out)
}

// respondPair solves a service with one coupling a >= rho*b in closed form.
// Without the coupling each resource's optimal set is an interval
// [lo, hi] (hi includes the segments whose net slope equals the price). If
// some point of that box meets the coupling it is optimal. Otherwise the
// coupling binds at every optimum (the problem is concave, so an optimum with
// a slack coupling would be an unconstrained optimum), and the optimum lies
// on the line a = rho*b: a one-dimensional concave piecewise-linear problem
// whose breakpoints are b's and a's (divided by rho), solved by walking them
// from the left while the combined slope is positive.
func (md *model) respondPair(i int, c coupling, lam *[R]float64, out *[R]float64) float64 {
	ia, ib := i*R+c.a, i*R+c.b
	pa, pb := lam[c.a], lam[c.b]
	loA, hiA, vA := md.bestRange(ia, pa)
	loB, vB := md.best(ib, pb, false)
	rho := c.ratio
	if need := rho * loB; need <= loA {
		out[c.a], out[c.b] = loA, loB
		return vA + vB
	} else if need <= hiA {
		// Raise a along segments priced exactly at pa: same response value.
		out[c.a], out[c.b] = need, loB
		return md.value(ia, need) + vB
	}
	b := md.walkLine(ia, ib, rho, pa, pb)
	a := min(max(rho*b, md.min[ia]), md.top[ia])
	out[c.a], out[c.b] = a, b
	return md.value(ia, a) + md.value(ib, b)
}

// walkLine returns the least maximiser over b of
// F_b(b) - pb*b + F_a(rho*b) - pa*rho*b on the feasible part of the line.
func (md *model) walkLine(ia, ib int, rho, pa, pb float64) float64 {
	lo := max(md.min[ib], md.min[ia]/rho)
	hi := min(md.top[ib], md.top[ia]/rho)
	if lo >= hi {
		return min(max(lo, md.min[ib]), md.top[ib])
	}
	b := lo
	kb, kbEnd, bpB := md.off[ib], md.off[ib+1], md.min[ib]
	ka, kaEnd, bpA := md.off[ia], md.off[ia+1], md.min[ia]
	for b < hi {
		// Move to the segments that run to the right of b.
		for kb < kbEnd && bpB+md.segLen[kb] <= b {
			bpB += md.segLen[kb]
			kb++
		}
		for ka < kaEnd && (bpA+md.segLen[ka])/rho <= b {
			bpA += md.segLen[ka]
			ka++
		}
		if kb == kbEnd || ka == kaEnd {
			break
		}
		if (md.segSlope[kb]-pb)+rho*(md.segSlope[ka]-pa) <= 0 {
			break
		}
		next := min(hi, bpB+md.segLen[kb], (bpA+md.segLen[ka])/rho)
		if next <= b {
			break
		}
		b = next
	}
	return b
}

// vertex is a vertex of a service's feasible set cut by its breakpoints:
// the amounts of its coupled resources and their value.
type vertex struct {
	amount [R]float64
	value  float64
}

// pickVertex returns the vertex with the best response value at lam (the
// first of equals).
func pickVertex(vs []vertex, mask uint8, lam *[R]float64, out *[R]float64) float64 {
	best, bestK := math.Inf(-1), 0
	for k := range vs {
		v := vs[k].value
		for r := range R {
			if mask&(1<<r) != 0 {
				v -= lam[r] * vs[k].amount[r]
			}
		}
		if v > best {
			best, bestK = v, k
		}
	}
	for r := range R {
		if mask&(1<<r) != 0 {
			out[r] = vs[bestK].amount[r]
		}
	}
	return vs[bestK].value
}

// vertices returns the vertices of service i's feasible set, restricted to
// the resources in mask and capped at top, cut by the breakpoints of its
// values (and the caps). The structured path asks for those of the coupled
// resources of a service with several couplings, the simplex path for those
// of every service over all resources. An optimum of a concave
// piecewise-linear function over a polytope lies at such a vertex,
// whatever the prices, so they are found once and each response is the
// best of them. At a vertex the tight couplings contain a
// spanning forest of each group of resources they connect, which fixes the
// ratios within the group, and one resource of each group sits at one of
// its breakpoints (for a group at zero, at its minimum of zero). So every
// vertex is found by choosing a forest of couplings to hold with equality
// and a breakpoint per group; candidates that break a bound or a coupling
// are dropped, and so is any vertex another one dominates (worth as much
// for no more of any resource: it can never be the better response to
// prices >= 0).
func (md *model) vertices(i int, mask uint8, top *[R]float64) []vertex {
	cs := md.cpl[i]
	var bps [R][MaxSegments + 2]float64
	var nbp [R]int
	for r := range R {
		if mask&(1<<r) == 0 {
			continue
		}
		ir := i*R + r
		bp := md.min[ir]
		bps[r][0], nbp[r] = bp, 1
		for k := md.off[ir]; k < md.off[ir+1]; k++ {
			bp += md.segLen[k]
			if p := min(bp, top[r]); p > bps[r][nbp[r]-1] {
				bps[r][nbp[r]] = p
				nbp[r]++
			}
		}
	}
	var all []vertex
	for set := 0; set < 1<<len(cs); set++ {
		parent := [R]int{0, 1, 2}
		find := func(r int) int {
			for parent[r] != r {
				r = parent[r]
			}
			return r
		}
		forest := true
		for j, c := range cs {
			if set&(1<<j) == 0 {
				continue
			}
			ra, rb := find(c.a), find(c.b)
			if ra == rb {
				forest = false
				break
			}
			parent[ra] = rb
		}
		if !forest {
			continue
		}
		// kappa[r] is r's amount per unit of its group's parameter.
		var kappa [R]float64
		var known [R]bool
		var reps []int
		for r := range R {
			if mask&(1<<r) != 0 && find(r) == r {
				kappa[r], known[r] = 1, true
				reps = append(reps, r)
			}
		}
		for range R {
			for j, c := range cs {
				if set&(1<<j) == 0 {
					continue
				}
				switch {
				case known[c.b] && !known[c.a]:
					kappa[c.a], known[c.a] = c.ratio*kappa[c.b], true
				case known[c.a] && !known[c.b]:
					kappa[c.b], known[c.b] = kappa[c.a]/c.ratio, true
				}
			}
		}
		// Candidate parameters of each group: each member at each of its
		// breakpoints.
		var cand [R][]float64
		for g, rep := range reps {
			for r := range R {
				if mask&(1<<r) == 0 || find(r) != rep {
					continue
				}
				for k := range nbp[r] {
					cand[g] = append(cand[g], bps[r][k]/kappa[r])
				}
			}
		}
		var pick [R]int
		for {
			var pt [R]float64
			for r := range R {
				if mask&(1<<r) == 0 {
					continue
				}
				for g, rep := range reps {
					if find(r) == rep {
						pt[r] = kappa[r] * cand[g][pick[g]]
					}
				}
			}
			if md.feasibleVertex(i, mask, &pt, top) {
				v := vertex{amount: pt}
				for r := range R {
					if mask&(1<<r) != 0 {
						v.value += md.value(i*R+r, pt[r])
					}
				}
				all = append(all, v)
			}
			// Next combination.
			g := 0
			for ; g < len(reps); g++ {
				pick[g]++
				if pick[g] < len(cand[g]) {
					break
				}
				pick[g] = 0
			}
			if g == len(reps) {
				break
			}
		}
	}
	if len(all) == 0 {
		// Cannot happen for a feasible service (lb is such a vertex).
		v := vertex{}
		for r := range R {
			if mask&(1<<r) != 0 {
				v.amount[r] = md.lb[i*R+r]
				v.value += md.value(i*R+r, v.amount[r])
			}
		}
		return []vertex{v}
	}
	// Drop dominated vertices: by value, best first, keeping a vertex only
	// if no kept one is worth as much for no more of anything.
	slices.SortStableFunc(all, func(x, y vertex) int { return cmp.Compare(y.value, x.value) })
	kept := all[:0]
	for _, v := range all {
		dominated := false
		for _, w := range kept {
			if w.amount[0] <= v.amount[0] && w.amount[1] <= v.amount[1] && w.amount[2] <= v.amount[2] {
				dominated = true
				break
			}
		}
		if !dominated {
			kept = append(kept, v)
		}
	}
	return slices.Clip(kept)
}

// vertexTolerance is how far, relatively, a candidate vertex may stray
// outside a bound or a coupling by rounding. It is relative because a
// coupling compares resources scaled differently.
const vertexTolerance = 1e-12

// feasibleVertex clamps pt into [min, top] and reports whether it meets
// those bounds and the couplings, to rounding.
func (md *model) feasibleVertex(i int, mask uint8, pt, top *[R]float64) bool {
	for r := range R {
		if mask&(1<<r) == 0 {
			continue
		}
		lo, hi := md.min[i*R+r], top[r]
		if pt[r] < lo-vertexTolerance*lo || pt[r] > hi+vertexTolerance*hi {
			return false
		}
		pt[r] = min(max(pt[r], lo), hi)
	}
	for _, c := range md.cpl[i] {
		if need := c.ratio * pt[c.b]; pt[c.a] < need-vertexTolerance*need {
			return false
		}
	}
	return true
}

// tops returns service i's top amounts.
func (md *model) tops(i int) *[R]float64 {
	return (*[R]float64)(md.top[i*R : i*R+R])
}
