package allocator

import (
	"errors"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// The general path hands the whole LP to gonum's Simplex, which wants the
// standard form min c·x, A x = b, x >= 0. gonum's Simplex is dense and
// textbook: it refactors the basis at every pivot and, on degenerate
// problems, tests candidate bases one by one (Bland's rule with a condition
// estimate each), so rows and degenerate rows are what make it slow. The
// formulation below keeps both few.
//
// It is the Dantzig-Wolfe master with every extreme point written out. A
// service's feasible set (bounds and couplings) cut by the breakpoints of its
// separable concave value has finitely many vertices, and the value is
// linear on each cell, so every allocation of the service is a convex
// combination of vertices worth the same combination of their values. With
// theta_v the weight of vertex v and amounts measured from the service's
// least allocation lb:
//
//	min  -sum_v theta_v (F(v) - F(lb))
//	s.t. sum_v theta_v (v_r - lb_r) + slack = L_r - sum lb_r   (each limit that can bind)
//	     sum_v theta_v + slack = 1                             (each service)
//
// The couplings are inside the vertex sets, so they cost no rows. A vertex
// that another one dominates (worth as much for no more of any resource)
// is dropped, and no service can take more than the room a limit leaves
// above the least allocations, so amounts are capped there (the cap is one
// more breakpoint). Every right-hand side is >= 0, so the slacks are a
// feasible first basis and gonum skips its Phase I. For three segments per
// resource and a memory-per-cpu coupling a service has about a dozen
// vertices and one row.

// maxSimplexCells bounds the dense matrix of the simplex path (8 bytes per
// cell); the path is meant for small problems.
const maxSimplexCells = 20_000_000

func (md *model) solveSimplex() (solution, error) {
	var limits []int
	var room [R]float64
	for r := range R {
		if !md.bindable[r] {
			continue
		}
		limits = append(limits, r)
		total := 0.0
		for i := range md.n {
			total += md.lb[i*R+r]
		}
		room[r] = max(md.limit[r]-total, 0)
	}
	type column struct {
		service int
		delta   [R]float64 // v - lb
		value   float64    // F(v) - F(lb)
	}
	var cols []column
	serviceRow := make([]int, md.n)
	rows := len(limits)
	const all = 1<<R - 1
	for i := range md.n {
		serviceRow[i] = -1
		base := 0.0
		for r := range R {
			base += md.value(i*R+r, md.lb[i*R+r])
		}
		before := len(cols)
		for _, v := range md.vertices(i, all, md.tops(i)) {
			c := column{service: i, value: v.value - base}
			moves := false
			for r := range R {
				c.delta[r] = max(v.amount[r]-md.lb[i*R+r], 0)
				moves = moves || c.delta[r] > 0
			}
			if moves {
				cols = append(cols, c)
			}
		}
		if len(cols) > before {
			serviceRow[i] = rows
			rows++
		}
	}
	if len(cols) == 0 {
		// Nothing can move from the least allocation.
		return solution{alloc: append([]float64(nil), md.lb...), method: Simplex}, nil
	}
	width := len(cols) + rows
	if rows*width > maxSimplexCells {
		return solution{}, domain.Errorf(domain.EINVALID,
			"the simplex path is for small problems: %d services make a %d x %d dense LP", md.n, rows, width)
	}
	a := mat.NewDense(rows, width, nil)
	b := make([]float64, rows)
	c := make([]float64, width)
	for k, r := range limits {
		b[k] = room[r]
	}
	for i := range md.n {
		if serviceRow[i] >= 0 {
			b[serviceRow[i]] = 1
		}
	}
	// gonum's optimality test is absolute (reduced costs below 1e-10), so
	// the objective is scaled to a largest coefficient of 1.
	cmax := 0.0
	for _, col := range cols {
		cmax = max(cmax, math.Abs(col.value))
	}
	if cmax == 0 {
		cmax = 1
	}
	for j, col := range cols {
		c[j] = -col.value / cmax
		for k, r := range limits {
			a.Set(k, j, col.delta[r])
		}
		a.Set(serviceRow[col.service], j, 1)
	}
	basis := make([]int, rows)
	for k := range rows {
		a.Set(k, len(cols)+k, 1)
		basis[k] = len(cols) + k
	}
	x, err := runSimplex(c, a, b, basis)
	if err != nil {
		return solution{}, domain.Errorf(domain.EINTERNAL, "allocator: gonum simplex on %d services: %v", md.n, err)
	}
	alloc := append([]float64(nil), md.lb...)
	for j, col := range cols {
		if x[j] == 0 {
			continue
		}
		for r := range R {
			alloc[col.service*R+r] += x[j] * col.delta[r]
		}
	}
	// gonum's tolerances are absolute; on a badly scaled problem (amounts
	// many orders of magnitude apart) they can give up feasibility. Say so
	// rather than return it.
	for _, r := range limits {
		used := 0.0
		for i := range md.n {
			used += alloc[i*R+r]
		}
		if used > md.limit[r]+1e-9*max(1/md.scale[r], md.limit[r]) {
			return solution{}, domain.Errorf(domain.EINTERNAL,
				"allocator: gonum simplex exceeded the %s limit by %g (a badly scaled problem); use Allocate",
				Resource(r), (used-md.limit[r])*md.scale[r])
		}
	}
	return solution{alloc: alloc, method: Simplex}, nil
}

// simplexFallbackServices is the size up to which the structured path falls
// back to the simplex path when its certificate fails.
const simplexFallbackServices = 60

// budgetMatrix is the constraint matrix as gonum's Simplex sees it: it
// counts element reads and aborts the solve once they pass a budget.
// gonum's Simplex has no iteration limit, and on a degenerate, badly scaled
// problem its tolerances can make it cycle; every pivot reads a column, so
// a bound on reads is a bound on pivots. It deliberately does not expose
// the dense storage, so that gonum reads through At.
type budgetMatrix struct {
	a      *mat.Dense
	reads  int
	budget int
}

// errSimplexBudget is the panic value that stops a run over budget.
var errSimplexBudget = errors.New("allocator: gonum simplex exceeded its pivot budget")

func (m *budgetMatrix) Dims() (int, int) { return m.a.Dims() }
func (m *budgetMatrix) T() mat.Matrix    { return mat.Transpose{Matrix: m} }
func (m *budgetMatrix) At(i, j int) float64 {
	if m.reads++; m.reads > m.budget {
		panic(errSimplexBudget)
	}
	return m.a.At(i, j)
}

// simplexPivots is how many pivots per column the budget allows. A
// successful run needs far fewer (each column enters the basis a few times
// at most); the bound only stops cycling.
const simplexPivots = 20

// runSimplex runs gonum's Simplex on the standard form with the given
// feasible basis, within a pivot budget.
func runSimplex(c []float64, a *mat.Dense, b []float64, basis []int) (x []float64, err error) {
	rows, cols := a.Dims()
	m := &budgetMatrix{a: a, budget: (4 + simplexPivots) * rows * cols}
	defer func() {
		if v := recover(); v != nil {
			if v != errSimplexBudget {
				panic(v)
			}
			x, err = nil, errSimplexBudget
		}
	}()
	_, x, err = lp.Simplex(c, m, b, 1e-10, basis)
	return x, err
}
