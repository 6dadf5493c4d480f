package allocator

import (
	"errors"
	"math"
	"slices"
)

// smallLP is a revised primal simplex for linear programs with very few rows
// (at most four here) and any number of columns:
//
//	maximise c·x  subject to  A x = b,  x >= 0,
//
// started from a feasible basis the caller supplies. With so few rows the
// basis inverse is recomputed from scratch after every pivot (a 4x4
// Gauss-Jordan), which keeps it accurate, and the dual values come straight
// from it. Columns can be added between solves; the basis stays feasible, so
// the next solve continues from it (warm start). The decomposition's master
// problem and the shadow-price problem both have this shape.
type smallLP struct {
	m     int
	b     []float64
	cols  []float64 // column j is cols[j*m : j*m+m]
	cost  []float64
	basis []int
	inB   []bool
	binv  []float64 // m*m, row-major
	x     []float64 // values of the basic columns
	y     []float64 // dual values, c_B B^-1
}

var (
	errUnbounded  = errors.New("allocator: linear program is unbounded")
	errSingular   = errors.New("allocator: singular basis")
	errNoConverge = errors.New("allocator: simplex did not converge")
)

func newSmallLP(b []float64) *smallLP {
	m := len(b)
	return &smallLP{
		m:    m,
		b:    append([]float64(nil), b...),
		binv: make([]float64, m*m),
		x:    make([]float64, m),
		y:    make([]float64, m),
	}
}

// add appends a column and returns its index.
func (lp *smallLP) add(col []float64, cost float64) int {
	lp.cols = append(lp.cols, col[:lp.m]...)
	lp.cost = append(lp.cost, cost)
	lp.inB = append(lp.inB, false)
	return len(lp.cost) - 1
}

func (lp *smallLP) column(j int) []float64 { return lp.cols[j*lp.m : j*lp.m+lp.m] }

// start makes basis the current basis; it must be feasible.
func (lp *smallLP) start(basis []int) error {
	for _, j := range lp.basis {
		lp.inB[j] = false
	}
	lp.basis = append(lp.basis[:0], basis...)
	for _, j := range basis {
		lp.inB[j] = true
	}
	return lp.factor()
}

// factor recomputes the basis inverse, the basic values and the duals.
func (lp *smallLP) factor() error {
	m := lp.m
	// Gauss-Jordan on [D B | D] with partial pivoting gives [I | B^-1],
	// where D scales each row of B to a largest entry of 1, so the pivot
	// test is relative whatever the rows' magnitudes (the master's usage
	// rows and its convexity row can differ by many orders).
	a := make([]float64, m*2*m)
	for i := range m {
		scale := 0.0
		for _, j := range lp.basis {
			scale = max(scale, math.Abs(lp.cols[j*m+i]))
		}
		if scale == 0 {
			return errSingular
		}
		for k, j := range lp.basis {
			a[i*2*m+k] = lp.cols[j*m+i] / scale
		}
		a[i*2*m+m+i] = 1 / scale
	}
	for c := range m {
		p, best := -1, 0.0
		for i := c; i < m; i++ {
			if v := math.Abs(a[i*2*m+c]); v > best {
				p, best = i, v
			}
		}
		if p < 0 || best <= 1e-13 {
			return errSingular
		}
		if p != c {
			for k := range 2 * m {
				a[p*2*m+k], a[c*2*m+k] = a[c*2*m+k], a[p*2*m+k]
			}
		}
		inv := 1 / a[c*2*m+c]
		for k := range 2 * m {
			a[c*2*m+k] *= inv
		}
		for i := range m {
			if i == c {
				continue
			}
			f := a[i*2*m+c]
			if f == 0 {
				continue
			}
			for k := range 2 * m {
				a[i*2*m+k] -= f * a[c*2*m+k]
			}
		}
	}
	for i := range m {
		copy(lp.binv[i*m:i*m+m], a[i*2*m+m:i*2*m+2*m])
	}
	for i := range m {
		v, size := 0.0, 0.0
		for k := range m {
			v += lp.binv[i*m+k] * lp.b[k]
			size += math.Abs(lp.binv[i*m+k] * lp.b[k])
		}
		if v < 0 {
			// Rounding of a degenerate basic value; a real infeasibility
			// would be far larger than the terms' rounding.
			if v < -1e-9*size {
				return errSingular
			}
			v = 0
		}
		lp.x[i] = v
	}
	for k := range m {
		v := 0.0
		for i, j := range lp.basis {
			v += lp.cost[j] * lp.binv[i*m+k]
		}
		lp.y[k] = v
	}
	return nil
}

// value returns the objective of the current basis.
func (lp *smallLP) value() float64 {
	v := 0.0
	for i, j := range lp.basis {
		v += lp.cost[j] * lp.x[i]
	}
	return v
}

// solve pivots to an optimal basis. It uses Dantzig's rule, and Bland's rule
// after a run of degenerate pivots so that it cannot cycle.
func (lp *smallLP) solve(maxIter int) error {
	m := lp.m
	u := make([]float64, m)
	degenerate := 0
	// Rounding can defeat even Bland's rule when columns are nearly equal:
	// reduced costs of the size of the rounding change sign from one basis
	// to the next and the pivots go round. A basis seen before means no
	// pivot can make real progress, so the current one is as good as
	// optimal; its value and duals stay valid bounds for the caller.
	seen := map[[4]int]bool{lp.basisKey(): true}
	for it := range maxIter {
		// Bland's rule cannot cycle; Dantzig's is faster while pivots make
		// progress. Rounding can make a degenerate pivot look like progress,
		// so Bland's rule also takes over for good after a while.
		bland := degenerate > 20 || it > 50+10*m
		enter, bestD := -1, 0.0
		for j := range lp.cost {
			if lp.inB[j] {
				continue
			}
			col := lp.column(j)
			d, scale := lp.cost[j], math.Abs(lp.cost[j])
			for i := range m {
				d -= lp.y[i] * col[i]
				scale += math.Abs(lp.y[i] * col[i])
			}
			if d <= 1e-12*scale+1e-300 {
				continue
			}
			if bland {
				enter = j
				break
			}
			if d > bestD {
				enter, bestD = j, d
			}
		}
		if enter < 0 {
			return nil
		}
		col := lp.column(enter)
		umax := 0.0
		for i := range m {
			v := 0.0
			for k := range m {
				v += lp.binv[i*m+k] * col[k]
			}
			u[i] = v
			umax = math.Max(umax, math.Abs(v))
		}
		leave, ratio := -1, math.Inf(1)
		for i := range m {
			if u[i] <= 1e-11*umax {
				continue
			}
			t := lp.x[i] / u[i]
			switch {
			case leave < 0 || t < ratio:
				leave, ratio = i, t
			case t == ratio:
				// Ties: Bland takes the smallest column index, otherwise the
				// largest pivot keeps the basis well conditioned.
				if (bland && lp.basis[i] < lp.basis[leave]) || (!bland && u[i] > u[leave]) {
					leave = i
				}
			}
		}
		if leave < 0 {
			return errUnbounded
		}
		if ratio <= 0 {
			degenerate++
		} else {
			degenerate = 0
		}
		lp.inB[lp.basis[leave]] = false
		lp.basis[leave] = enter
		lp.inB[enter] = true
		if err := lp.factor(); err != nil {
			return err
		}
		if k := lp.basisKey(); m <= 4 {
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
	}
	return errNoConverge
}

// basisKey identifies the basis (for at most four rows) regardless of order.
func (lp *smallLP) basisKey() [4]int {
	k := [4]int{-1, -1, -1, -1}
	copy(k[:], lp.basis)
	slices.Sort(k[:min(len(lp.basis), 4)])
	return k
}

// basicValue returns the value of column j (0 when it is not basic).
func (lp *smallLP) basicValue(j int) float64 {
	if !lp.inB[j] {
		return 0
	}
	for i, b := range lp.basis {
		if b == j {
			return lp.x[i]
		}
	}
	return 0
}
