package allocator

import (
	"errors"
	"math"
)

// Shadow prices come from complementary slackness, the same way for every
// method. In segment form the LP is
//
//	max  sum s_k x_k
//	s.t. sum_i x_ir <= L_r - sum_i min_ir           (price lam_r >= 0)
//	     x_k <= len_k                               (mu_k >= 0)
//	     ratio*alloc_b - alloc_a <= 0 per coupling  (sigma >= 0)
//	     x >= 0
//
// and a dual solution is optimal exactly when it is feasible and
// complementary to any one optimal allocation. Write pi_ir = lam_r + (the
// sigma terms of service i's couplings on r): each segment's dual constraint
// pi + mu_k >= s_k then says pi_ir >= s_k for every segment not full and
// pi_ir <= s_k for every segment not empty, so pi_ir lies in
// [A_ir, B_ir] = [largest slope not full, smallest slope not empty]; lam_r
// is 0 where the limit is slack and sigma is 0 where a coupling is slack.
// Services without a tight coupling thus bound lam_r to an interval; the
// sigmas of a service with tight couplings are eliminated exactly
// (Fourier-Motzkin over at most a few variables), leaving linear constraints
// on lam. The optimal duals are the lam meeting them all.
//
// The value of one more unit of r, the right derivative of the optimum in
// L_r, is the least lam_r over that set (a standard result of LP
// sensitivity), so each price is a small LP in at most three variables,
// solved through its dual (three rows, one column per constraint) by
// smallLP.

// errNoDual reports that the complementary-slackness system has no
// solution, which only rounding can cause.
var errNoDual = errors.New("allocator: no dual solution matches the allocation")

// maxPairs is the most couplings a service can have after merging: one
// per ordered pair of resources.
const maxPairs = R * (R - 1)

// halfspace is lam·coef >= rhs.
type halfspace struct {
	lam [R]float64
	rhs float64
}

// ineq is lam·coef + sigma·sig >= rhs.
type ineq struct {
	lam [R]float64
	sig [maxPairs]float64
	rhs float64
}

// shadowPrices returns, in model units, the least optimal dual value of each
// limit in binding (0 elsewhere); tol is how close (in model units) a
// segment's fill must be to a bound to count as at it.
func (md *model) shadowPrices(alloc []float64, binding [R]bool, tol float64) ([R]float64, error) {
	var prices [R]float64
	var dims []int
	for r := range R {
		if binding[r] {
			dims = append(dims, r)
		}
	}
	if len(dims) == 0 {
		return prices, nil
	}
	var lo, hi [R]float64
	for r := range R {
		lo[r], hi[r] = 0, math.Inf(1)
	}
	var general []halfspace
	var rows, spare []ineq
	for i := range md.n {
		var active [maxPairs]coupling
		na := 0
		for _, c := range md.cpl[i] {
			// Relative: the coupling compares resources scaled differently.
			if a := alloc[i*R+c.a]; a-c.ratio*alloc[i*R+c.b] <= tol*a {
				active[na] = c
				na++
			}
		}
		var amask uint8
		for _, c := range active[:na] {
			amask |= 1<<c.a | 1<<c.b
		}
		rows = rows[:0]
		for r := range R {
			if amask&(1<<r) == 0 && !binding[r] {
				continue
			}
			a, b := md.slopeRange(i*R+r, alloc[i*R+r], tol)
			if amask&(1<<r) == 0 {
				lo[r], hi[r] = max(lo[r], a), min(hi[r], b)
				continue
			}
			// pi_r = lam_r (0 unless binding) + sum of sigma terms.
			var up ineq
			for j, c := range active[:na] {
				switch r {
				case c.a:
					up.sig[j] = -1
				case c.b:
					up.sig[j] = c.ratio
				}
			}
			if binding[r] {
				up.lam[r] = 1
			}
			if !math.IsInf(a, -1) {
				up.rhs = a
				rows = append(rows, up)
			}
			if !math.IsInf(b, 1) {
				down := ineq{rhs: -b}
				for k := range R {
					down.lam[k] = -up.lam[k]
				}
				for k := range na {
					down.sig[k] = -up.sig[k]
				}
				rows = append(rows, down)
			}
		}
		if na == 0 {
			continue
		}
		for j := range na {
			var nonneg ineq
			nonneg.sig[j] = 1
			rows = append(rows, nonneg)
		}
		for j := na - 1; j >= 0; j-- {
			rows, spare = eliminate(rows, spare[:0], j), rows
		}
		for _, rw := range rows {
			nz, last := 0, -1
			scale := math.Abs(rw.rhs)
			for r := range R {
				if rw.lam[r] != 0 {
					nz, last = nz+1, r
					scale = math.Max(scale, math.Abs(rw.lam[r]))
				}
			}
			switch {
			case nz == 0:
				if rw.rhs > 1e-9*scale+1e-12 {
					return prices, errNoDual
				}
			case nz == 1:
				if v := rw.rhs / rw.lam[last]; rw.lam[last] > 0 {
					lo[last] = math.Max(lo[last], v)
				} else {
					hi[last] = math.Min(hi[last], v)
				}
			default:
				general = append(general, halfspace{lam: rw.lam, rhs: rw.rhs})
			}
		}
	}
	for _, r := range dims {
		if lo[r] > hi[r]+1e-9*(1+math.Abs(hi[r])) {
			return prices, errNoDual
		}
	}
	for _, t := range dims {
		v, err := minPrice(dims, t, lo, hi, general)
		if err != nil {
			return prices, err
		}
		prices[t] = v
	}
	return prices, nil
}

// slopeRange returns [A, B]: the largest net slope among the segments of ir
// not full at amount a (-Inf if none) and the smallest among those not empty
// (+Inf if none).
func (md *model) slopeRange(ir int, a, tol float64) (float64, float64) {
	lo, hi := math.Inf(-1), math.Inf(1)
	bp := md.min[ir]
	for k := md.off[ir]; k < md.off[ir+1]; k++ {
		l, s := md.segLen[k], md.segSlope[k]
		fill := min(max(a-bp, 0), l)
		full, empty := l-fill <= tol, fill <= tol
		if full && empty {
			// A segment shorter than the tolerance: whichever is nearer.
			full, empty = fill >= l/2, fill < l/2
		}
		if !full {
			lo = max(lo, s)
		}
		if !empty {
			hi = min(hi, s)
		}
		bp += l
	}
	return lo, hi
}

// eliminate removes sigma j from rows by Fourier-Motzkin, writing the
// result to out: every pair of a lower and an upper bound on sigma j gives
// one constraint without it.
func eliminate(rows, out []ineq, j int) []ineq {
	for _, rw := range rows {
		if rw.sig[j] == 0 {
			out = append(out, rw)
		}
	}
	for _, p := range rows {
		if !(p.sig[j] > 0) {
			continue
		}
		for _, q := range rows {
			if !(q.sig[j] < 0) {
				continue
			}
			cp, cq := -q.sig[j], p.sig[j]
			c := ineq{rhs: cp*p.rhs + cq*q.rhs}
			scale := 0.0
			for r := range R {
				c.lam[r] = cp*p.lam[r] + cq*q.lam[r]
				scale = max(scale, math.Abs(c.lam[r]))
			}
			for k := range maxPairs {
				if k != j {
					c.sig[k] = cp*p.sig[k] + cq*q.sig[k]
					scale = max(scale, math.Abs(c.sig[k]))
				}
			}
			if scale > 0 {
				for r := range R {
					c.lam[r] /= scale
				}
				for k := range maxPairs {
					c.sig[k] /= scale
				}
				c.rhs /= scale
			}
			out = append(out, c)
		}
	}
	return out
}

// minPrice returns min lam_t subject to lo <= lam <= hi, lam >= 0 and the
// general constraints, through the dual LP
//
//	max h·y  s.t.  G^T y <= e_t,  y >= 0
//
// whose slack basis is feasible. An unbounded dual means no lam fits.
func minPrice(dims []int, t int, lo, hi [R]float64, general []halfspace) (float64, error) {
	if len(general) == 0 {
		return math.Max(lo[t], 0), nil
	}
	m := len(dims)
	rhs := make([]float64, m)
	for k, r := range dims {
		if r == t {
			rhs[k] = 1
		}
	}
	lp := newSmallLP(rhs)
	col := make([]float64, m)
	var basis []int
	for k := range dims {
		clear(col)
		col[k] = 1
		basis = append(basis, lp.add(col, 0))
	}
	for k, r := range dims {
		clear(col)
		if lo[r] > 0 {
			col[k] = 1
			lp.add(col, lo[r])
		}
		if !math.IsInf(hi[r], 1) {
			col[k] = -1
			lp.add(col, -hi[r])
		}
	}
	for _, g := range general {
		for k, r := range dims {
			col[k] = g.lam[r]
		}
		lp.add(col, g.rhs)
	}
	if err := lp.start(basis); err != nil {
		return 0, err
	}
	if err := lp.solve(100000); err != nil {
		if errors.Is(err, errUnbounded) {
			return 0, errNoDual
		}
		return 0, err
	}
	return math.Max(lp.value(), 0), nil
}
