package allocator

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

var inf = math.Inf(1)

// demand is a test shorthand: a demand from min with the given segments.
func demand(min float64, segs ...Segment) Demand {
	d := Demand{Min: min, Desired: min, Value: segs}
	for _, s := range segs {
		d.Desired += s.Length
	}
	return d
}

// cpuOnly is a service that asks for cpu only.
func cpuOnly(name string, d Demand) Service {
	return Service{Name: name, Demand: [R]Demand{CPU: d}}
}

// solveBoth solves p on both paths, checks they agree and are feasible,
// and returns the structured result.
func solveBoth(t *testing.T, p *Problem) *Result {
	t.Helper()
	got, err := Allocate(p)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	sx, err := AllocateSimplex(p)
	if err != nil {
		t.Fatalf("AllocateSimplex: %v", err)
	}
	if !objectiveClose(got.Objective, sx.Objective) {
		t.Errorf("objective %v, simplex %v", got.Objective, sx.Objective)
	}
	for r := range R {
		if a, b := got.Limits[r].ShadowPrice, sx.Limits[r].ShadowPrice; math.Abs(a-b) > 1e-9*math.Max(1, math.Abs(a)) {
			t.Errorf("%s shadow price %v, simplex %v", Resource(r), a, b)
		}
	}
	checkFeasible(t, p, got)
	checkFeasible(t, p, sx)
	return got
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// want describes the expected optimum of a small problem.
type want struct {
	objective float64
	amounts   [][R]float64
	binding   [R]bool
	price     [R]float64
	atMinimum [R][]int
}

func check(t *testing.T, got *Result, w want) {
	t.Helper()
	if !near(got.Objective, w.objective) {
		t.Errorf("objective %v, want %v", got.Objective, w.objective)
	}
	for i, a := range w.amounts {
		for r := range R {
			if !near(got.Services[i].Amount[r], a[r]) {
				t.Errorf("service %d %s: got %v, want %v", i, Resource(r), got.Services[i].Amount[r], a[r])
			}
		}
	}
	for r := range R {
		lr := got.Limits[r]
		if lr.Binding != w.binding[r] {
			t.Errorf("%s binding %v, want %v", Resource(r), lr.Binding, w.binding[r])
		}
		if !near(lr.ShadowPrice, w.price[r]) {
			t.Errorf("%s shadow price %v, want %v", Resource(r), lr.ShadowPrice, w.price[r])
		}
		if w.atMinimum[r] != nil && !reflect.DeepEqual(append([]int{}, lr.AtMinimum...), w.atMinimum[r]) {
			t.Errorf("%s at minimum %v, want %v", Resource(r), lr.AtMinimum, w.atMinimum[r])
		}
	}
}

// TestConstraintKinds checks each kind of constraint on problems small
// enough to solve by hand, on both paths.
func TestConstraintKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Problem
		want want
	}{
		{
			// Segments fill by slope: a's first (3), then b's (2) until the
			// limit; the price is the slope the limit cuts.
			name: "limit",
			p: Problem{
				Services: []Service{
					cpuOnly("a", demand(1, Segment{2, 3}, Segment{2, 1})),
					cpuOnly("b", demand(0, Segment{4, 2})),
				},
				Limits: [R]float64{6, inf, inf},
			},
			want: want{objective: 2*3 + 3*2, amounts: [][R]float64{{3}, {3}}, binding: [R]bool{true}, price: [R]float64{2}},
		},
		{
			// Nothing binds: everyone gets what they desire.
			name: "slack limit",
			p: Problem{
				Services: []Service{cpuOnly("a", demand(1, Segment{2, 3}, Segment{2, 1}))},
				Limits:   [R]float64{100, 100, 100},
			},
			want: want{objective: 8, amounts: [][R]float64{{5}}, atMinimum: [R][]int{nil, {0}, {0}}},
		},
		{
			// Bounds: the minimum is kept even when its units are worth
			// nothing, and nothing goes past desired.
			name: "bounds",
			p: Problem{
				Services: []Service{
					cpuOnly("low", demand(2, Segment{3, -1})),
					cpuOnly("high", demand(1, Segment{1, 5})),
				},
				Limits: [R]float64{inf, inf, inf},
			},
			want: want{objective: 5, amounts: [][R]float64{{2}, {2}}, atMinimum: [R][]int{{0}}},
		},
		{
			// A unit is allocated only where its value exceeds its cost.
			name: "cost",
			p: Problem{
				Services: []Service{cpuOnly("a", demand(0, Segment{2, 3}, Segment{2, 2}))},
				Limits:   [R]float64{inf, inf, inf},
				Costs:    [R]float64{2.5},
			},
			want: want{objective: 2 * 0.5, amounts: [][R]float64{{2}}},
		},
		{
			// Memory >= 2*cpu with 6 of memory: x's cpu (worth 5 a core)
			// needs 2 memory a core, so memory is worth 2.5 to x, more than
			// y's 1: x gets all 6 and 3 cores.
			name: "coupling binds",
			p: Problem{
				Services: []Service{
					{Name: "x", Demand: [R]Demand{demand(0, Segment{4, 5}), demand(0, Segment{8, 0})}, Couplings: []Coupling{{Memory, CPU, 2}}},
					{Name: "y", Demand: [R]Demand{Memory: demand(0, Segment{4, 1})}},
				},
				Limits: [R]float64{10, 6, inf},
			},
			want: want{objective: 15, amounts: [][R]float64{{3, 6}, {0, 0}}, binding: [R]bool{false, true}, price: [R]float64{0, 2.5}},
		},
		{
			// With 10 of memory x is satisfied (4 cores, 8 memory) and y's
			// value sets the price.
			name: "coupling satisfied",
			p: Problem{
				Services: []Service{
					{Name: "x", Demand: [R]Demand{demand(0, Segment{4, 5}), demand(0, Segment{8, 0})}, Couplings: []Coupling{{Memory, CPU, 2}}},
					{Name: "y", Demand: [R]Demand{Memory: demand(0, Segment{4, 1})}},
				},
				Limits: [R]float64{10, 10, inf},
			},
			want: want{objective: 22, amounts: [][R]float64{{4, 8}, {0, 2}}, binding: [R]bool{false, true}, price: [R]float64{0, 1}},
		},
		{
			// A coupling raises a minimum: memory >= 2*cpu with cpu at
			// least 2 needs 4 of memory although memory's own minimum is 1.
			name: "coupling raises minimum",
			p: Problem{
				Services: []Service{
					{Name: "x", Demand: [R]Demand{demand(2, Segment{2, 1}), demand(1, Segment{7, 0.5})}, Couplings: []Coupling{{Memory, CPU, 2}}},
				},
				Limits: [R]float64{inf, 4, inf},
			},
			want: want{objective: 3 * 0.5, amounts: [][R]float64{{2, 4}}, binding: [R]bool{false, true}, price: [R]float64{0, 0.5 + 1.0/2}, atMinimum: [R][]int{{0}, {}, {0}}},
		},
		{
			// Two couplings on one service: memory >= cpu and disk >= 2*cpu.
			// Disk is scarce (4), so cpu stops at 2 and memory fills on its
			// own value.
			name: "two couplings",
			p: Problem{
				Services: []Service{
					{Name: "x", Demand: [R]Demand{demand(0, Segment{4, 3}), demand(0, Segment{6, 1}), demand(0, Segment{8, 0})},
						Couplings: []Coupling{{Memory, CPU, 1}, {Disk, CPU, 2}}},
				},
				Limits: [R]float64{inf, inf, 4},
			},
			want: want{objective: 2*3 + 6*1, amounts: [][R]float64{{2, 6, 4}}, binding: [R]bool{false, false, true}, price: [R]float64{0, 0, 1.5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, solveBoth(t, &tt.p), tt.want)
		})
	}
}

// TestDegenerate covers ties, zero limits, fixed services, huge and absent
// limits, and an empty problem.
func TestDegenerate(t *testing.T) {
	t.Parallel()
	three := func(lim float64) Problem {
		return Problem{
			Services: []Service{
				cpuOnly("a", demand(0, Segment{4, 1})),
				cpuOnly("b", demand(0, Segment{4, 1})),
				cpuOnly("c", demand(0, Segment{2, 1}, Segment{2, 1})),
			},
			Limits: [R]float64{lim, inf, inf},
		}
	}
	tests := []struct {
		name string
		p    Problem
		want want
	}{
		{
			// All slopes equal: the limit is shared in proportion.
			name: "equal slopes",
			p:    three(6),
			want: want{objective: 6, amounts: [][R]float64{{2}, {2}, {2}}, binding: [R]bool{true}, price: [R]float64{1}},
		},
		{
			// The limit equals total desire: it binds, but one more unit
			// is worth nothing (the right derivative); one less would cost
			// 1 (the left derivative, not reported).
			name: "limit at desired",
			p:    three(12),
			want: want{objective: 12, amounts: [][R]float64{{4}, {4}, {4}}, binding: [R]bool{true}, price: [R]float64{0}},
		},
		{
			// A zero limit with zero minimums: nothing to give, and the
			// first unit would be worth 1.
			name: "zero limit",
			p:    three(0),
			want: want{objective: 0, amounts: [][R]float64{{0}, {0}, {0}}, binding: [R]bool{true}, price: [R]float64{1}, atMinimum: [R][]int{{0, 1, 2}}},
		},
		{
			name: "huge limit",
			p:    three(1e300),
			want: want{objective: 12, amounts: [][R]float64{{4}, {4}, {4}}},
		},
		{
			name: "no limit",
			p:    three(inf),
			want: want{objective: 12, amounts: [][R]float64{{4}, {4}, {4}}},
		},
		{
			// Services with min = desired are fixed; the limit equals the
			// minimums, so the other service gets its minimum only.
			name: "fixed services at the limit",
			p: Problem{
				Services: []Service{
					cpuOnly("fixed", demand(3)),
					cpuOnly("flex", demand(1, Segment{0, 9}, Segment{4, 2})),
				},
				Limits: [R]float64{4, 0, 0},
			},
			want: want{objective: 0, amounts: [][R]float64{{3}, {1}}, binding: [R]bool{true, true, true}, price: [R]float64{2}, atMinimum: [R][]int{{0, 1}, {0, 1}, {0, 1}}},
		},
		{
			name: "no services",
			p:    Problem{Limits: [R]float64{1, 1, 1}},
			want: want{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, solveBoth(t, &tt.p), tt.want)
		})
	}
}

func TestInfeasible(t *testing.T) {
	t.Parallel()
	t.Run("minimums over a limit", func(t *testing.T) {
		t.Parallel()
		p := &Problem{
			Services: []Service{
				cpuOnly("a", demand(3000, Segment{1000, 1})),
				cpuOnly("b", demand(5000)),
				cpuOnly("c", demand(500)),
			},
			Limits: [R]float64{6000, inf, inf},
		}
		for _, solve := range []func(*Problem) (*Result, error){Allocate, AllocateSimplex} {
			_, err := solve(p)
			if code := domain.ErrorCode(err); code != domain.EINFEASIBLE {
				t.Fatalf("code %q, want %q (%v)", code, domain.EINFEASIBLE, err)
			}
			var de *domain.Error
			if !errors.As(err, &de) {
				t.Fatalf("%v is not a *domain.Error", err)
			}
			var ie *InfeasibleError
			if !errors.As(err, &ie) {
				t.Fatalf("%v carries no *InfeasibleError", err)
			}
			wantRes := []Insufficient{{
				Resource: CPU, Reason: "Insufficient cpu", Requested: 8500, Capacity: 6000, Shortfall: 2500,
				Largest: []Need{{1, "b", 5000}, {0, "a", 3000}, {2, "c", 500}},
			}}
			if !reflect.DeepEqual(ie.Resources, wantRes) || ie.Services != nil {
				t.Errorf("detail %+v, want %+v", ie, wantRes)
			}
			msg := err.Error()
			for _, s := range []string{"Insufficient cpu", "8500m", "6000m", "2500m", "services[1] (b) 5000m"} {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
		}
	})
	t.Run("coupling above desired", func(t *testing.T) {
		t.Parallel()
		p := &Problem{
			Services: []Service{{Name: "x", Demand: [R]Demand{demand(4, Segment{2, 1}), demand(0, Segment{6, 1})}, Couplings: []Coupling{{Memory, CPU, 2}}}},
			Limits:   [R]float64{inf, inf, inf},
		}
		_, err := Allocate(p)
		var ie *InfeasibleError
		if !errors.As(err, &ie) || domain.ErrorCode(err) != domain.EINFEASIBLE {
			t.Fatalf("got %v, want an InfeasibleError", err)
		}
		want := []Unsatisfiable{{Service: 0, Name: "x", Resource: Memory, Need: 8, Desired: 6}}
		if !reflect.DeepEqual(ie.Services, want) {
			t.Errorf("services %+v, want %+v", ie.Services, want)
		}
	})
	t.Run("coupling pushes minimums over a limit", func(t *testing.T) {
		t.Parallel()
		p := &Problem{
			Services: []Service{{Name: "x", Demand: [R]Demand{demand(4, Segment{2, 1}), demand(0, Segment{12, 1})}, Couplings: []Coupling{{Memory, CPU, 2}}}},
			Limits:   [R]float64{inf, 7, inf},
		}
		_, err := Allocate(p)
		var ie *InfeasibleError
		if !errors.As(err, &ie) || len(ie.Resources) != 1 || ie.Resources[0].Requested != 8 || ie.Resources[0].Shortfall != 1 {
			t.Fatalf("got %v (%+v), want memory short by 1", err, ie)
		}
	})
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	ok := func() Problem {
		return Problem{
			Services: []Service{{Name: "web", Demand: [R]Demand{demand(1, Segment{2, 3}, Segment{2, 1}), demand(1, Segment{1, 1}), demand(0)}}},
			Limits:   [R]float64{10, 10, 10},
		}
	}
	tests := []struct {
		name   string
		change func(p *Problem)
		where  string
	}{
		{"NaN minimum", func(p *Problem) { p.Services[0].Demand[CPU].Min = math.NaN() }, "services[0] (web) cpu.min"},
		{"negative desired", func(p *Problem) { p.Services[0].Demand[Disk].Desired = -1 }, "services[0] (web) disk.desired"},
		{"min above desired", func(p *Problem) { p.Services[0].Demand[Memory].Min = 5 }, "services[0] (web) memory.min"},
		{"rising slopes", func(p *Problem) { p.Services[0].Demand[CPU].Value[1].Slope = 4 }, "services[0] (web) cpu.value[1].slope"},
		{"infinite slope", func(p *Problem) { p.Services[0].Demand[CPU].Value[0].Slope = inf }, "services[0] (web) cpu.value[0].slope"},
		{"negative length", func(p *Problem) { p.Services[0].Demand[CPU].Value[0].Length = -2 }, "services[0] (web) cpu.value[0].length"},
		{"lengths short", func(p *Problem) { p.Services[0].Demand[CPU].Desired = 9 }, "services[0] (web) cpu.value"},
		{"no segments", func(p *Problem) { p.Services[0].Demand[Disk].Desired = 3 }, "services[0] (web) disk.value"},
		{"unknown resource", func(p *Problem) { p.Services[0].Couplings = []Coupling{{Resource(7), CPU, 1}} }, "services[0] (web) couplings[0].resource"},
		{"unknown per-unit resource", func(p *Problem) { p.Services[0].Couplings = []Coupling{{Memory, Resource(-1), 1}} }, "services[0] (web) couplings[0].per_unit_of"},
		{"self coupling", func(p *Problem) { p.Services[0].Couplings = []Coupling{{Memory, Memory, 1}} }, "services[0] (web) couplings[0]"},
		{"zero ratio", func(p *Problem) { p.Services[0].Couplings = []Coupling{{Memory, CPU, 0}} }, "services[0] (web) couplings[0].ratio"},
		{"negative limit", func(p *Problem) { p.Limits[Memory] = -1 }, "limits.memory"},
		{"NaN limit", func(p *Problem) { p.Limits[CPU] = math.NaN() }, "limits.cpu"},
		{"negative cost", func(p *Problem) { p.Costs[Disk] = -0.5 }, "costs.disk"},
		{"too many segments", func(p *Problem) {
			p.Services[0].Demand[Disk] = demand(0, make([]Segment, MaxSegments+1)...)
		}, "services[0] (web) disk.value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := ok()
			tt.change(&p)
			for _, solve := range []func(*Problem) (*Result, error){Allocate, AllocateSimplex} {
				_, err := solve(&p)
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != domain.EINVALID {
					t.Fatalf("got %v, want EINVALID", err)
				}
				found := false
				for _, pr := range de.Problems {
					found = found || pr.Where == tt.where
				}
				if !found {
					t.Errorf("problems %v do not name %q", de.Problems, tt.where)
				}
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		if _, err := Allocate(nil); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("got %v, want EINVALID", err)
		}
	})
}

// TestShadowPriceIsRightDerivative checks the reported prices against
// finite differences of the optimum: one more unit of a limit is worth
// exactly its price wherever the optimum is linear just above the limit.
func TestShadowPriceIsRightDerivative(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 14))
	shapes := []shape{{}, {couplings: 1}, {couplings: 2}, {couplings: 3}, {ties: true, couplings: 1}, {limits: 2, couplings: 1}}
	checked := 0
	for k := range 60 {
		p := randomProblem(rng, 1+rng.IntN(40), shapes[k%len(shapes)])
		base, err := Allocate(p)
		if err != nil {
			continue
		}
		for r := range R {
			if math.IsInf(p.Limits[r], 1) {
				continue
			}
			slope := func(delta float64) float64 {
				q := *p
				q.Limits[r] += delta
				res, err := Allocate(&q)
				if err != nil {
					t.Fatal(err)
				}
				return (res.Objective - base.Objective) / delta
			}
			delta := 1e-4 * math.Max(1, p.Limits[r])
			d1, d2 := slope(delta), slope(delta/4)
			if math.Abs(d1-d2) > 1e-6*math.Max(math.Abs(d2), 1e-6) {
				continue // a breakpoint within delta: the difference is not the derivative
			}
			checked++
			if price := base.Limits[r].ShadowPrice; math.Abs(price-d2) > 1e-5*math.Max(math.Abs(d2), 1e-3) {
				t.Errorf("instance %d %s: shadow price %v, finite difference %v (binding %v)", k, Resource(r), price, d2, base.Limits[r].Binding)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d prices checked", checked)
	}
}

// TestRounding checks that rounded units never exceed a limit, never fall
// below an integral minimum, and that every service's units round its
// amount down.
func TestRounding(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 5))
	for k := range 40 {
		p := randomProblem(rng, 1+rng.IntN(50), shape{realistic: true, couplings: k % 3, limits: k % 3})
		for i := range p.Services {
			for r := range R {
				d := &p.Services[i].Demand[r]
				d.Min = math.Floor(d.Min)
			}
		}
		res, err := Allocate(p)
		if err != nil {
			continue
		}
		var total [R]int64
		for i, a := range res.Services {
			u := [R]int64{a.Units.CPUMillicores, a.Units.MemoryBytes, a.Units.DiskBytes}
			for r := range R {
				total[r] += u[r]
				if float64(u[r]) > a.Amount[r] || float64(u[r]) < p.Services[i].Demand[r].Min {
					t.Errorf("instance %d service %d %s: units %d for amount %v, minimum %v", k, i, Resource(r), u[r], a.Amount[r], p.Services[i].Demand[r].Min)
				}
			}
		}
		for r := range R {
			if total[r] != res.Limits[r].UsedUnits || float64(total[r]) > p.Limits[r] {
				t.Errorf("instance %d %s: units total %d (reported %d), limit %v", k, Resource(r), total[r], res.Limits[r].UsedUnits, p.Limits[r])
			}
		}
	}
	// Amounts that sum to a limit exactly may floor to a total over it
	// only if rounding lifted them; integral limits with fractional shares
	// floor below.
	p := &Problem{
		Services: []Service{
			cpuOnly("a", demand(0, Segment{10, 1})),
			cpuOnly("b", demand(0, Segment{10, 1})),
			cpuOnly("c", demand(0, Segment{10, 1})),
		},
		Limits: [R]float64{10, inf, inf},
	}
	res, err := Allocate(p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Limits[CPU].UsedUnits != 9 {
		t.Errorf("units total %d, want 9 (three times floor(10/3))", res.Limits[CPU].UsedUnits)
	}
}

// TestPairResponse checks the closed-form response of a service with one
// coupling against the best of its vertices, at random prices including
// ties with its slopes.
func TestPairResponse(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	for k := range 300 {
		p := randomProblem(rng, 1, shape{couplings: 2, ties: k%2 == 0, limits: 1})
		md, err := newModel(p)
		if err != nil || len(md.cpl[0]) != 1 {
			continue
		}
		var lam [R]float64
		for r := range R {
			switch rng.IntN(3) {
			case 0:
			case 1:
				// A price equal to a slope: ties.
				if lo, hi := md.off[r], md.off[r+1]; hi > lo {
					lam[r] = max(0, md.segSlope[lo+int32(rng.IntN(int(hi-lo)))])
				}
			default:
				lam[r] = rng.Float64() * 3
			}
		}
		var a, b [R]float64
		va := md.respondPair(0, md.cpl[0][0], &lam, &a)
		vb := pickVertex(md.vertices(0, md.mask[0], md.tops(0)), md.mask[0], &lam, &b)
		ra, rb := va, vb
		for r := range R {
			if md.mask[0]&(1<<r) != 0 {
				ra -= lam[r] * a[r]
				rb -= lam[r] * b[r]
			}
		}
		if math.Abs(ra-rb) > 1e-9*math.Max(1, math.Abs(rb)) {
			t.Errorf("case %d: closed form %v at %v, vertices %v at %v (prices %v)", k, ra, a, rb, b, lam)
		}
		if !md.feasibleVertex(0, md.mask[0], &a, md.tops(0)) {
			t.Errorf("case %d: closed form %v is infeasible", k, a)
		}
	}
}

// TestDeterministic: the same problem gives the same result, bit for bit.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	p := benchProblem(300)
	a, err := Allocate(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Allocate(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("two runs differ")
	}
}

// TestBenchInstanceAgainstGLPK checks the benchmark's own instance shape
// at 1,000 services.
func TestBenchInstanceAgainstGLPK(t *testing.T) {
	t.Parallel()
	bin := glpsol(t)
	p := benchProblem(1000)
	want := solveGLPK(t, bin, t.TempDir(), p)
	got, err := Allocate(p)
	if err != nil {
		t.Fatal(err)
	}
	if !objectiveClose(got.Objective, want.objective) {
		t.Errorf("objective %.12g, GLPK %.12g", got.Objective, want.objective)
	}
	checkFeasible(t, p, got)
	for r := range R {
		if !got.Limits[r].Binding {
			t.Errorf("%s does not bind; the benchmark means every limit to", Resource(r))
		}
	}
}

func TestDiminishingReturns(t *testing.T) {
	t.Parallel()
	d := DiminishingReturns(100, 1000, 6, 2000)
	if len(d.Value) != ValueSegments {
		t.Fatalf("%d segments, want %d", len(d.Value), ValueSegments)
	}
	sum := 0.0
	for k, s := range d.Value {
		sum += s.Length
		if want := 6.0 / 2000 / math.Pow(2, float64(k)); !near(s.Slope, want) {
			t.Errorf("segment %d slope %v, want %v", k, s.Slope, want)
		}
	}
	if sum != 900 {
		t.Errorf("lengths add up to %v, want 900", sum)
	}
	if d := DiminishingReturns(5, 5, 1, 1); d.Value != nil || d.Desired != 5 {
		t.Errorf("min = desired gives %+v, want no segments", d)
	}
	s := &Service{Demand: [R]Demand{CPU: {Desired: 2000}, Memory: {Desired: 4 << 30}}}
	if c, ok := KeepRatio(s, Memory, CPU); !ok || c != (Coupling{Memory, CPU, float64(4<<30) / 2000}) {
		t.Errorf("KeepRatio = %+v, %v", c, ok)
	}
	if _, ok := KeepRatio(s, Disk, CPU); ok {
		t.Error("KeepRatio without a desired disk should report false")
	}
}
