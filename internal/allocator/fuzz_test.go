package allocator

import (
	"math"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// fuzzReader turns fuzz bytes into problem fields; it reads zeros once the
// bytes run out.
type fuzzReader struct{ data []byte }

func (f *fuzzReader) byte() byte {
	if len(f.data) == 0 {
		return 0
	}
	b := f.data[0]
	f.data = f.data[1:]
	return b
}

// special values that probe validation and numerics.
var fuzzValues = [16]float64{0, 1, 2, 0.5, 3, 10, 1e-9, 1e9, 1e15, 7, 1e-300, 1e300, 4.6e18, -1, math.NaN(), math.Inf(1)}

// amount returns a non-negative amount, or with chaos set, anything.
func (f *fuzzReader) amount(chaos bool) float64 {
	b := f.byte()
	v := fuzzValues[b&15] * (1 + float64(b>>4)/4)
	if !chaos {
		v = math.Abs(v)
		if math.IsNaN(v) || math.IsInf(v, 0) || v > 1e18 {
			v = float64(b >> 4)
		}
	}
	return v
}

// decodeProblem builds a small problem from fuzz bytes: mostly valid (so
// the solvers run), with a chaos byte letting special values through.
func decodeProblem(data []byte) *Problem {
	f := &fuzzReader{data: data}
	chaos := f.byte()%8 == 0
	p := &Problem{Services: make([]Service, 1+int(f.byte()%5))}
	for r := range R {
		p.Limits[r] = f.amount(chaos)
		if f.byte()%4 == 0 {
			p.Limits[r] = math.Inf(1)
		}
		p.Costs[r] = f.amount(chaos) / 8
	}
	for i := range p.Services {
		s := &p.Services[i]
		for r := range R {
			d := Demand{Min: f.amount(chaos)}
			span := f.amount(chaos)
			d.Desired = d.Min + span
			k := int(f.byte() % 4)
			if span > 0 && k == 0 {
				k = 1
			}
			slope := f.amount(chaos) - f.amount(false)
			left := span
			for j := range k {
				l := left
				if j < k-1 {
					l = left * float64(f.byte()%5) / 4
				}
				left -= l
				d.Value = append(d.Value, Segment{Length: l, Slope: slope})
				if chaos && f.byte()%3 == 0 {
					slope += f.amount(chaos) // may break concavity
				} else {
					slope -= f.amount(false)
				}
			}
			s.Demand[r] = d
		}
		for range int(f.byte() % 3) {
			a, b := Resource(f.byte()%4), Resource(f.byte()%4)
			if !chaos {
				a, b = a%R, (a+1+b%2)%R
			}
			ratio := f.amount(chaos)
			if !chaos && ratio == 0 {
				ratio = 1
			}
			s.Couplings = append(s.Couplings, Coupling{a, b, ratio})
		}
	}
	return p
}

// FuzzAllocate checks that validation and both solvers never panic, fail
// only with EINVALID or EINFEASIBLE (or an EINTERNAL error that says the
// numbers defeated the solver), and return feasible allocations.
func FuzzAllocate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 3, 5, 1, 0, 2, 9, 1, 4, 3, 7, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 4, 14, 0, 15, 1, 13, 7, 12, 11, 3, 2, 1, 0, 2, 0, 1, 5})
	f.Add([]byte{2, 2, 4, 1, 5, 1, 9, 0, 3, 3, 3, 3, 3, 2, 0, 1, 4, 2, 1, 0, 9, 9, 9, 9, 2, 1, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := decodeProblem(data)
		for k, solve := range []func(*Problem) (*Result, error){Allocate, AllocateSimplex} {
			res, err := solve(p)
			if err != nil {
				// On absurdly scaled input (amounts or values per unit many
				// orders of magnitude apart) the solvers may give up, and
				// must say so; any other internal error is a bug.
				code := domain.ErrorCode(err)
				msg := err.Error()
				gaveUp := code == domain.EINTERNAL && (strings.Contains(msg, "could not certify") ||
					(k == 1 && strings.Contains(msg, "gonum simplex")))
				if code != domain.EINVALID && code != domain.EINFEASIBLE && !gaveUp {
					t.Fatalf("unexpected error %v (code %q)", err, code)
				}
				continue
			}
			checkFeasible(t, p, res)
			if math.IsNaN(res.Objective) || math.IsInf(res.Objective, 0) {
				t.Fatalf("objective %v", res.Objective)
			}
		}
	})
}
