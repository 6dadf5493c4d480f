package allocator

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// The GLPK comparison: every instance is written as an LP in free MPS form,
// built straight from the Problem (not from the solver's model), and solved
// by glpsol, an independent solver.

var (
	glpsolOnce sync.Once
	glpsolBin  string
	glpsolErr  error
)

// glpsol returns the path of glpsol, installing Debian's glpk-utils when it
// is missing and the test runs as root with apt-get. Without it the test
// skips, except under CI=true where it fails: the comparison must run.
func glpsol(tb testing.TB) string {
	tb.Helper()
	glpsolOnce.Do(func() {
		if p, err := exec.LookPath("glpsol"); err == nil {
			glpsolBin = p
			return
		}
		if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
			glpsolErr = errors.New("glpsol not found (install glpk-utils)")
			return
		}
		for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "glpk-utils"}} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				glpsolErr = fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
		glpsolBin, glpsolErr = exec.LookPath("glpsol")
	})
	if glpsolErr != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("GLPK comparison cannot run under CI: %v", glpsolErr)
		}
		tb.Skipf("skipping GLPK comparison: %v", glpsolErr)
	}
	return glpsolBin
}

// writeMPS writes p's segment LP in free MPS form: one column per segment
// (x <= length), a row per finite limit and per coupling, minimising the
// negated net value. Quantities of resource r are written in units of
// unit[r] (the same LP after a change of units): GLPK's tolerances are
// absolute, so it needs a well-scaled problem, which base units (bytes
// priced at 1e-10 each) are not.
func writeMPS(p *Problem, unit [R]float64) []byte {
	var b bytes.Buffer
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	b.WriteString("NAME alloc\nROWS\n N obj\n")
	var minSum [R]float64
	for i := range p.Services {
		for r := range R {
			minSum[r] += p.Services[i].Demand[r].Min
		}
	}
	for r := range R {
		if !math.IsInf(p.Limits[r], 1) {
			fmt.Fprintf(&b, " L lim%d\n", r)
		}
	}
	for i, s := range p.Services {
		for j := range s.Couplings {
			fmt.Fprintf(&b, " L c%d_%d\n", i, j)
		}
	}
	b.WriteString("COLUMNS\n")
	var bounds bytes.Buffer
	for i, s := range p.Services {
		for r := range R {
			for k, sg := range s.Demand[r].Value {
				name := fmt.Sprintf("x%d_%d_%d", i, r, k)
				fmt.Fprintf(&b, " %s obj %s\n", name, f(-(sg.Slope-p.Costs[r])*unit[r]))
				if !math.IsInf(p.Limits[r], 1) {
					fmt.Fprintf(&b, " %s lim%d 1\n", name, r)
				}
				for j, c := range s.Couplings {
					switch r {
					case int(c.PerUnitOf):
						fmt.Fprintf(&b, " %s c%d_%d %s\n", name, i, j, f(c.Ratio*unit[r]/unit[c.Resource]))
					case int(c.Resource):
						fmt.Fprintf(&b, " %s c%d_%d -1\n", name, i, j)
					}
				}
				fmt.Fprintf(&bounds, " UP BND %s %s\n", name, f(sg.Length/unit[r]))
			}
		}
	}
	b.WriteString("RHS\n")
	for r := range R {
		if !math.IsInf(p.Limits[r], 1) {
			fmt.Fprintf(&b, " RHS lim%d %s\n", r, f((p.Limits[r]-minSum[r])/unit[r]))
		}
	}
	for i, s := range p.Services {
		for j, c := range s.Couplings {
			d := &s.Demand
			fmt.Fprintf(&b, " RHS c%d_%d %s\n", i, j, f((d[c.Resource].Min-c.Ratio*d[c.PerUnitOf].Min)/unit[c.Resource]))
		}
	}
	b.WriteString("BOUNDS\n")
	b.Write(bounds.Bytes())
	b.WriteString("ENDATA\n")
	return b.Bytes()
}

// glpkSolution is what glpsol reports.
type glpkSolution struct {
	feasible  bool
	objective float64 // of the maximisation (net value)
	limitDual [R]float64
}

// solveGLPK runs glpsol on p. The solution goes to a file in a temporary
// directory: never -o /dev/null, which as root replaces the device.
func solveGLPK(tb testing.TB, bin, dir string, p *Problem) glpkSolution {
	return solveGLPKUnits(tb, bin, dir, p, unitsOf(p))
}

// unitsOf picks a power of ten per resource near its largest desired
// amount.
func unitsOf(p *Problem) [R]float64 {
	var u [R]float64
	for r := range R {
		u[r] = math.Pow(10, math.Floor(math.Log10(unitOf(p, r))))
	}
	return u
}

func solveGLPKUnits(tb testing.TB, bin, dir string, p *Problem, unit [R]float64) glpkSolution {
	tb.Helper()
	mps := filepath.Join(dir, "p.mps")
	sol := filepath.Join(dir, "p.sol")
	if err := os.WriteFile(mps, writeMPS(p, unit), 0o600); err != nil {
		tb.Fatal(err)
	}
	os.Remove(sol)
	out, err := exec.Command(bin, "--freemps", mps, "--write", sol).CombinedOutput()
	if err != nil {
		tb.Fatalf("glpsol: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("NO PRIMAL FEASIBLE SOLUTION")) {
		return glpkSolution{}
	}
	data, err := os.ReadFile(sol)
	if err != nil {
		tb.Fatalf("glpsol wrote no solution: %v\n%s", err, out)
	}
	s := parseGLPK(tb, p, data, out)
	for r := range R {
		s.limitDual[r] /= unit[r]
	}
	return s
}

func parseGLPK(tb testing.TB, p *Problem, data, log []byte) glpkSolution {
	tb.Helper()
	var s glpkSolution
	// Rows in the file are numbered without the free objective row, in MPS
	// order: the finite limits first.
	var limitRow [R]int
	row := 0
	for r := range R {
		limitRow[r] = -1
		if !math.IsInf(p.Limits[r], 1) {
			row++
			limitRow[r] = row
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 7 && f[0] == "s":
			if f[4] != "f" || f[5] != "f" {
				tb.Fatalf("glpsol status %q %q, want optimal:\n%s\n%s", f[4], f[5], data, log)
			}
			v, err := strconv.ParseFloat(f[6], 64)
			if err != nil {
				tb.Fatal(err)
			}
			s.feasible, s.objective = true, -v
		case len(f) == 5 && f[0] == "i":
			k, _ := strconv.Atoi(f[1])
			d, _ := strconv.ParseFloat(f[4], 64)
			for r := range R {
				if limitRow[r] == k {
					s.limitDual[r] = -d
				}
			}
		}
	}
	if !s.feasible {
		tb.Fatalf("no solution line in glpsol output:\n%s", data)
	}
	return s
}

// shape says what kind of random instance to make.
type shape struct {
	couplings int  // 0 none, 1 memory per cpu from desired, 2 random pairs, 3 several per service
	ties      bool // integer slopes shared across services
	realistic bool // base units: millicores and bytes
	limits    int  // 0 binding, 1 slack, 2 at minimums, 3 mixed with no limit
}

// randomProblem makes a reproducible random instance.
func randomProblem(rng *rand.Rand, n int, sh shape) *Problem {
	unit := [R]float64{1, 1, 1}
	if sh.realistic {
		unit = [R]float64{1000, 1 << 30, 1e10}
	}
	p := &Problem{Services: make([]Service, n)}
	for r := range R {
		if rng.IntN(3) == 0 {
			p.Costs[r] = rng.Float64() * 0.5 / unit[r]
		}
	}
	for i := range p.Services {
		s := &p.Services[i]
		s.Name = fmt.Sprintf("svc%d", i)
		w := 0.5 + rng.Float64()*4
		if sh.ties {
			w = float64(1 + rng.IntN(3))
		}
		for r := range R {
			lo := math.Round(rng.Float64()*8*unit[r]*8) / 8
			span := math.Round(rng.Float64()*16*unit[r]*8) / 8
			switch rng.IntN(8) {
			case 0:
				span = 0 // m = d
			case 1:
				lo = 0
			}
			d := Demand{Min: lo, Desired: lo + span}
			k := rng.IntN(5)
			if span > 0 && k == 0 {
				k = 1
			}
			slopes := make([]float64, k)
			slope := w * (0.2 + rng.Float64()) / unit[r]
			for j := range slopes {
				slopes[j] = slope
				if !sh.ties || rng.IntN(2) == 0 {
					slope -= math.Abs(slope) * 0.7 * rng.Float64()
				}
				if rng.IntN(6) == 0 {
					slope -= 0.5 / unit[r] // below cost now and then
				}
			}
			left := span
			for j := 0; j < k; j++ {
				l := left
				if j < k-1 {
					l = math.Round(rng.Float64()*left*8) / 8
					if rng.IntN(5) == 0 {
						l = 0 // a zero-length segment
					}
				}
				left -= l
				d.Value = append(d.Value, Segment{Length: l, Slope: slopes[j]})
			}
			s.Demand[r] = d
		}
		// A random coupling's ratio is a fraction of the service's desired
		// ratio, in about one small instance out of four above it (which
		// may make it infeasible).
		ratio := func(a, b Resource) float64 {
			f := 0.1 + 0.9*rng.Float64()
			if n <= 60 && rng.IntN(4*n) == 0 {
				f = 1.5
			}
			if d := s.Demand[b].Desired; d > 0 && s.Demand[a].Desired > 0 {
				return f * s.Demand[a].Desired / d
			}
			return f * unit[a] / unit[b]
		}
		switch sh.couplings {
		case 1:
			if c, ok := KeepRatio(s, Memory, CPU); ok {
				s.Couplings = append(s.Couplings, c)
			}
		case 2:
			if rng.IntN(2) == 0 {
				a := Resource(rng.IntN(R))
				b := Resource((int(a) + 1 + rng.IntN(R-1)) % R)
				s.Couplings = append(s.Couplings, Coupling{a, b, ratio(a, b)})
			}
		case 3:
			for range rng.IntN(4) {
				a := Resource(rng.IntN(R))
				b := Resource((int(a) + 1 + rng.IntN(R-1)) % R)
				s.Couplings = append(s.Couplings, Coupling{a, b, ratio(a, b)})
			}
		}
		if n > 60 {
			// Large instances stay feasible: no coupling holds a resource
			// up with one the service does not desire at all.
			s.Couplings = slices.DeleteFunc(s.Couplings, func(c Coupling) bool {
				return s.Demand[c.Resource].Desired == 0 && s.Demand[c.PerUnitOf].Min > 0
			})
		}
	}
	// Limits between the least feasible totals and the desired totals.
	least := leastTotals(p)
	for r := range R {
		want := 0.0
		for i := range p.Services {
			want += p.Services[i].Demand[r].Desired
		}
		mode := sh.limits
		if mode == 3 {
			mode = rng.IntN(4)
		}
		switch mode {
		case 0:
			p.Limits[r] = least[r] + rng.Float64()*0.7*(want-least[r])
		case 1:
			p.Limits[r] = want * (1 + rng.Float64())
		case 2:
			p.Limits[r] = least[r]
		case 3:
			p.Limits[r] = math.Inf(1)
		}
	}
	return p
}

// leastTotals returns the least total of each resource any feasible
// allocation uses, by propagating the couplings (a test-side copy of the
// rule, kept independent of the solver's).
func leastTotals(p *Problem) [R]float64 {
	var t [R]float64
	for _, s := range p.Services {
		var lb [R]float64
		for r := range R {
			lb[r] = s.Demand[r].Min
		}
		for range 10 {
			for _, c := range s.Couplings {
				lb[c.Resource] = math.Max(lb[c.Resource], c.Ratio*lb[c.PerUnitOf])
			}
		}
		for r := range R {
			t[r] += math.Min(lb[r], s.Demand[r].Desired)
		}
	}
	return t
}

// checkFeasible fails unless res is within the bounds, couplings and limits
// of p (to 1e-9, relative to the quantity's size) and its units round down.
func checkFeasible(tb testing.TB, p *Problem, res *Result) {
	tb.Helper()
	tol := func(x float64) float64 { return 1e-9 * math.Max(1, math.Abs(x)) }
	var used [R]float64
	for i, s := range p.Services {
		a := res.Services[i].Amount
		for r := range R {
			d := s.Demand[r]
			if a[r] < d.Min-tol(d.Min) || a[r] > d.Desired+tol(d.Desired) {
				tb.Errorf("service %d %s: amount %v outside [%v, %v]", i, Resource(r), a[r], d.Min, d.Desired)
			}
			used[r] += a[r]
		}
		for _, c := range s.Couplings {
			if a[c.Resource] < c.Ratio*a[c.PerUnitOf]-tol(a[c.Resource]) {
				tb.Errorf("service %d: %s %v < %v * %s %v", i, c.Resource, a[c.Resource], c.Ratio, c.PerUnitOf, a[c.PerUnitOf])
			}
		}
	}
	for r := range R {
		if used[r] > p.Limits[r]+tol(p.Limits[r]) {
			tb.Errorf("%s: total %v exceeds limit %v", Resource(r), used[r], p.Limits[r])
		}
		if !math.IsInf(p.Limits[r], 1) && float64(res.Limits[r].UsedUnits) > p.Limits[r] {
			tb.Errorf("%s: rounded total %d exceeds limit %v", Resource(r), res.Limits[r].UsedUnits, p.Limits[r])
		}
	}
}

// objectiveClose reports whether two objectives agree to 1e-6 relative.
func objectiveClose(a, b float64) bool {
	return math.Abs(a-b) <= 1e-6*math.Max(math.Max(math.Abs(a), math.Abs(b)), 1e-6)
}

// glpkInstances is the number of random instances compared with GLPK.
const glpkInstances = 250

// simplexMaxServices bounds the instances also solved by the gonum path.
const simplexMaxServices = 16

func TestAgainstGLPK(t *testing.T) {
	t.Parallel()
	bin := glpsol(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(20240611, 5))
	shapes := []shape{
		{}, {couplings: 1}, {couplings: 2}, {couplings: 3}, {ties: true}, {ties: true, couplings: 1},
		{limits: 1}, {limits: 2, couplings: 1}, {limits: 3, couplings: 2}, {realistic: true, couplings: 1},
		{limits: 3}, {ties: true, couplings: 3, limits: 3},
	}
	var compared, infeasible, withSimplex int
	for k := range glpkInstances {
		sh := shapes[k%len(shapes)]
		n := 1 + rng.IntN(60)
		if k%3 == 0 {
			n = 1 + rng.IntN(simplexMaxServices)
		}
		p := randomProblem(rng, n, sh)
		name := fmt.Sprintf("%03d_n%d_%+v", k, n, sh)
		ok := t.Run(name, func(t *testing.T) {
			want := solveGLPK(t, bin, dir, p)
			got, err := Allocate(p)
			if !want.feasible {
				var ie *InfeasibleError
				if !errors.As(err, &ie) {
					t.Fatalf("GLPK finds no feasible solution; Allocate returned %v", err)
				}
				infeasible++
				return
			}
			if err != nil {
				t.Fatalf("Allocate: %v (GLPK objective %v)", err, want.objective)
			}
			compared++
			if !objectiveClose(got.Objective, want.objective) {
				t.Errorf("objective %.12g (%s, %d iterations), GLPK %.12g", got.Objective, got.Method, got.Iterations, want.objective)
			}
			checkFeasible(t, p, got)
			for r := range R {
				// The reported price is the least optimal dual; GLPK's is
				// some optimal dual.
				if lr := got.Limits[r]; lr.ShadowPrice > want.limitDual[r]*(1+1e-6)+1e-9/unitOf(p, r) {
					t.Errorf("%s shadow price %g above GLPK's dual %g", Resource(r), lr.ShadowPrice, want.limitDual[r])
				}
			}
			if n > simplexMaxServices {
				return
			}
			withSimplex++
			sx, err := AllocateSimplex(p)
			if err != nil {
				t.Fatalf("AllocateSimplex: %v", err)
			}
			if !objectiveClose(sx.Objective, want.objective) {
				t.Errorf("simplex objective %.12g, GLPK %.12g", sx.Objective, want.objective)
			}
			checkFeasible(t, p, sx)
			for r := range R {
				a, b := got.Limits[r], sx.Limits[r]
				if a.Binding != b.Binding || math.Abs(a.ShadowPrice-b.ShadowPrice) > 1e-6*math.Max(math.Abs(a.ShadowPrice), 1e-6/unitOf(p, r)) {
					t.Errorf("%s: structured binding %v price %g, simplex binding %v price %g", Resource(r), a.Binding, a.ShadowPrice, b.Binding, b.ShadowPrice)
				}
			}
		})
		if !ok && testing.Short() {
			break
		}
	}
	t.Logf("%d instances compared with GLPK (%d also with the gonum simplex), %d infeasible for both", compared, withSimplex, infeasible)
	if compared < 200 {
		t.Errorf("only %d feasible instances compared, want at least 200", compared)
	}
}

// unitOf returns a typical unit of resource r in p, for price tolerances.
func unitOf(p *Problem, r int) float64 {
	m := 0.0
	for _, s := range p.Services {
		m = math.Max(m, s.Demand[r].Desired)
	}
	return math.Max(m, 1)
}

// TestLargeAgainstGLPK compares a few large instances of every shape, where
// the decomposition runs dozens of iterations.
func TestLargeAgainstGLPK(t *testing.T) {
	t.Parallel()
	bin := glpsol(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	shapes := []shape{
		{couplings: 1}, {couplings: 3}, {ties: true, couplings: 1}, {couplings: 2, limits: 3},
		{realistic: true, couplings: 1}, {realistic: true, couplings: 3}, {limits: 2, couplings: 3}, {ties: true},
	}
	for k, sh := range shapes {
		n := 200 + rng.IntN(1300)
		p := randomProblem(rng, n, sh)
		t.Run(fmt.Sprintf("%d_n%d_%+v", k, n, sh), func(t *testing.T) {
			want := solveGLPK(t, bin, dir, p)
			got, err := Allocate(p)
			if !want.feasible {
				if domain.ErrorCode(err) != domain.EINFEASIBLE {
					t.Fatalf("GLPK finds no feasible solution; Allocate returned %v", err)
				}
				t.Log("infeasible for both")
				return
			}
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if !objectiveClose(got.Objective, want.objective) {
				t.Errorf("objective %.12g (%s, %d iterations), GLPK %.12g", got.Objective, got.Method, got.Iterations, want.objective)
			}
			checkFeasible(t, p, got)
			t.Logf("%s, %d iterations, objective %.12g", got.Method, got.Iterations, got.Objective)
		})
	}
}
