package allocator

import (
	"fmt"
	"math"
	"sort"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Allocate returns the allocation that maximises the total net value within
// the limits and couplings, by the structured path: a knapsack per resource
// no coupling touches, and the decomposition for coupled ones (see Method).
// If the decomposition's duality-gap certificate fails, it falls back to
// the simplex path on small problems, and otherwise returns an EINTERNAL
// error saying so. That takes inputs no realistic composition has (the
// fuzzer finds them with amounts or values per unit twelve orders of
// magnitude apart within one problem); every GLPK comparison certifies.
//
// It returns EINVALID, naming the service and field, for malformed input,
// and an *InfeasibleError (code EINFEASIBLE) when the minimums do not fit.
func Allocate(p *Problem) (*Result, error) { return run(p, false) }

// AllocateSimplex solves the same problem on the general path: gonum's
// Simplex on the whole LP. It is exact but dense, so it is meant for small
// problems (tens of services) and as a check on Allocate.
func AllocateSimplex(p *Problem) (*Result, error) { return run(p, true) }

// solution is an optimal allocation in model units.
type solution struct {
	alloc      []float64
	method     Method
	iterations int
	gap        float64
	lam        [R]float64 // an optimal dual, when the method found one
	hasLam     bool
	overshoot  float64 // the most a total exceeds its limit, relative
}

func run(p *Problem, simplex bool) (res *Result, err error) {
	defer func() {
		// Nothing here should panic; if something does, the caller gets an
		// internal error instead of a crash.
		if v := recover(); v != nil {
			res, err = nil, domain.Errorf(domain.EINTERNAL, "allocator: %v", v)
		}
	}()
	if p == nil {
		return nil, domain.Errorf(domain.EINVALID, "no allocation problem given")
	}
	if err := validate(p); err != nil {
		return nil, err
	}
	md, err := newModel(p)
	if err != nil {
		return nil, err
	}
	var sol solution
	if simplex {
		sol, err = md.solveSimplex()
	} else {
		var ok bool
		sol, ok = md.solveStructured()
		if !ok {
			fail := fmt.Sprintf("allocator: the decomposition could not certify an optimum to 1e-9 (gap %g, largest limit overshoot %g): "+
				"the problem's amounts or values span too many orders of magnitude for float64", sol.gap, sol.overshoot)
			if md.n > simplexFallbackServices {
				return nil, domain.Errorf(domain.EINTERNAL, "%s", fail)
			}
			if sol, err = md.solveSimplex(); err != nil {
				return nil, domain.Errorf(domain.EINTERNAL, "%s; the simplex path failed too: %v", fail, err)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return md.result(p, sol), nil
}

// solveStructured solves by knapsacks and the decomposition and reports
// whether the optimum is certified.
func (md *model) solveStructured() (solution, bool) {
	alloc := make([]float64, md.n*R)
	sol := solution{alloc: alloc, method: Knapsack}
	for r := range R {
		if md.coupledRes&(1<<r) == 0 {
			md.knapsack(r, alloc)
		}
	}
	if md.coupledRes == 0 {
		return sol, true
	}
	d := newDecomposer(md)
	out := d.solve(alloc)
	sol.method, sol.iterations = Decomposition, out.iterations
	sol.lam, sol.hasLam = out.lam, true
	// The certificate: the allocation is feasible and worth the upper bound.
	value := 0.0
	var used [R]float64
	for i := range md.n {
		for r := range R {
			if md.coupledRes&(1<<r) != 0 {
				ir := i*R + r
				value += md.value(ir, alloc[ir])
				used[r] += alloc[ir]
			}
		}
	}
	if out.failed {
		return sol, false
	}
	sol.gap = math.Max(out.upper-value, 0)
	ok := out.upper-value <= 1e-9*math.Max(math.Abs(out.upper), 1e-6*d.valueScale)+1e-300
	for _, r := range d.dims {
		sol.overshoot = max(sol.overshoot, (used[r]-md.limit[r])/math.Max(1, md.limit[r]))
	}
	return sol, ok && sol.overshoot <= 1e-9
}

// bindTolerance is how close (relative) a total must come to its limit to
// bind.
const bindTolerance = 1e-9

// result turns a solution into the Result: amounts in base units, limit
// reports with shadow prices, and rounded units.
func (md *model) result(p *Problem, sol solution) *Result {
	res := &Result{
		Method:     sol.method,
		Iterations: sol.iterations,
		Gap:        sol.gap,
		Objective:  md.objective(sol.alloc),
		Services:   make([]Allocation, md.n),
	}
	var used [R]float64
	for i := range md.n {
		a := &res.Services[i]
		a.Name = p.Services[i].Name
		for r := range R {
			ir := i*R + r
			d := &p.Services[i].Demand[r]
			used[r] += sol.alloc[ir]
			a.Amount[r] = math.Min(math.Max(sol.alloc[ir]*md.scale[r], d.Min), d.Desired)
			// Amounts that matter are at most about 2 in model units (the
			// scale is the limit, or the largest desired amount).
			a.AtMinimum[r] = sol.alloc[ir] <= md.min[ir]+1e-9*min(md.max[ir], 2)
		}
	}
	var binding [R]bool
	for r := range R {
		binding[r] = !math.IsInf(md.limit[r], 1) && used[r] >= md.limit[r]-bindTolerance*math.Max(1, md.limit[r])
	}
	prices, err := md.shadowPrices(sol.alloc, binding, 1e-9)
	for tol := 1e-7; err != nil && tol <= 1e-5; tol *= 100 {
		prices, err = md.shadowPrices(sol.alloc, binding, tol)
	}
	if err != nil && !sol.hasLam && md.coupledRes != 0 {
		// The simplex path has no dual of its own to fall back on.
		if s, _ := md.solveStructured(); s.hasLam {
			sol.lam, sol.hasLam = s.lam, true
		}
	}
	if err != nil && sol.hasLam {
		// Rounding defeated the exact system (never seen): report the
		// decomposition's own optimal dual.
		prices, err = sol.lam, nil
	}
	for r := range R {
		lr := &res.Limits[r]
		lr.Resource = Resource(r)
		lr.Limit = p.Limits[r]
		lr.Binding = binding[r]
		if binding[r] && err == nil {
			lr.ShadowPrice = prices[r] / md.scale[r]
		} else if binding[r] {
			lr.ShadowPrice = math.NaN()
		}
		for i := range md.n {
			lr.Used += res.Services[i].Amount[r]
			if res.Services[i].AtMinimum[r] {
				lr.AtMinimum = append(lr.AtMinimum, i)
			}
		}
	}
	roundDown(p, res)
	return res
}

// roundDown sets the whole units of every allocation: each amount rounded
// down, so no rounded total exceeds its limit. Amounts are clamped to
// [Min, Desired] first, so integral minimums survive the rounding; if the
// floors of amounts that overshoot a limit by rounding still exceed it, the
// largest allocations give up units (never below their rounded-down
// minimum). A coupling the rounding breaks by a fraction of a unit is
// restored by lowering the coupled resource when that keeps it at or above
// its minimum.
func roundDown(p *Problem, res *Result) {
	n := len(res.Services)
	units := make([][R]int64, n)
	floorMin := func(i, r int) int64 { return toUnits(p.Services[i].Demand[r].Min) }
	for i := range n {
		for r := range R {
			units[i][r] = toUnits(res.Services[i].Amount[r])
		}
	}
	for r := range R {
		if math.IsInf(p.Limits[r], 1) {
			continue
		}
		limit := toUnits(p.Limits[r])
		total := int64(0)
		for i := range n {
			total = addUnits(total, units[i][r])
		}
		if total <= limit {
			continue
		}
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(x, y int) bool { return units[order[x]][r] > units[order[y]][r] })
		for _, i := range order {
			if total <= limit {
				break
			}
			give := min(units[i][r]-floorMin(i, r), total-limit)
			if give > 0 {
				units[i][r] -= give
				total -= give
			}
		}
	}
	for i := range n {
		for range R {
			for _, c := range p.Services[i].Couplings {
				a, b := int(c.Resource), int(c.PerUnitOf)
				if float64(units[i][a]) >= c.Ratio*float64(units[i][b]) {
					continue
				}
				if nb := toUnits(float64(units[i][a]) / c.Ratio); nb >= floorMin(i, b) && nb < units[i][b] {
					units[i][b] = nb
				}
			}
		}
	}
	for r := range R {
		res.Limits[r].UsedUnits = 0
	}
	for i := range n {
		u := units[i]
		res.Services[i].Units = domain.Resources{CPUMillicores: u[CPU], MemoryBytes: u[Memory], DiskBytes: u[Disk]}
		for r := range R {
			res.Limits[r].UsedUnits = addUnits(res.Limits[r].UsedUnits, u[r])
		}
	}
}

// toUnits rounds x >= 0 down to an int64, saturating.
func toUnits(x float64) int64 {
	switch {
	case !(x > 0):
		return 0
	case x >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(math.Floor(x))
}

// addUnits adds non-negative unit counts, saturating instead of wrapping.
func addUnits(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// String summarises a result for logs and the text plan.
func (r LimitReport) String() string {
	state := "slack"
	if r.Binding {
		state = fmt.Sprintf("binding, shadow price %g per unit", r.ShadowPrice)
	}
	return fmt.Sprintf("%s: %g of %g (%s)", r.Resource, r.Used, r.Limit, state)
}
