package allocator

import (
	"fmt"
	"sort"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Method names the algorithm that produced a result.
type Method string

const (
	// Knapsack: no coupling ties resources together, so each resource is a
	// continuous knapsack solved exactly by filling segments in order of net
	// slope.
	Knapsack Method = "knapsack"
	// Decomposition: couplings tie resources within services; the limits'
	// prices are found by a cutting-plane method on the Lagrangian dual and
	// the allocation is recovered from the final master (Dantzig-Wolfe), with
	// a duality-gap certificate.
	Decomposition Method = "decomposition"
	// Simplex: the general path, gonum's dense Simplex on the whole LP.
	Simplex Method = "simplex"
)

// Result is an optimal allocation.
type Result struct {
	// Method is the algorithm that found the allocation.
	Method Method
	// Objective is the total net value of the units above the minimums:
	// sum over segments of (slope - cost) * filled length.
	Objective float64
	// Gap is the certified distance to the optimum: an upper bound on the
	// optimal objective (from a dual solution) minus Objective. It is 0 for
	// methods that are exact by construction.
	Gap float64
	// Iterations counts the master iterations of the decomposition (dual
	// evaluations); 0 for the other methods.
	Iterations int
	// Services holds one allocation per service, in the problem's order.
	Services []Allocation
	// Limits reports on each limit.
	Limits [NumResources]LimitReport
}

// Allocation is what one service gets.
type Allocation struct {
	Name string
	// Amount is the optimal allocation in base units (millicores, bytes).
	Amount [NumResources]float64
	// Units is Amount rounded down to whole base units, so the rounded totals
	// never exceed a limit (rounding up could). Rounding down may leave a
	// coupling short by less than one unit where lowering the coupled
	// resource would go below its minimum.
	Units domain.Resources
	// AtMinimum reports, per resource, whether the service got only its
	// minimum.
	AtMinimum [NumResources]bool
}

// LimitReport describes one limit at the optimum.
type LimitReport struct {
	Resource Resource
	// Limit is the problem's limit (+Inf for none).
	Limit float64
	// Used is the total allocation; UsedUnits the total of the rounded units.
	Used      float64
	UsedUnits int64
	// Binding reports whether the total allocation reaches the limit (within
	// a relative tolerance of 1e-9).
	Binding bool
	// ShadowPrice is the value of one more unit of the resource: the right
	// derivative of the optimal objective with respect to the limit. It is
	// an exact LP dual value: the smallest one over all optimal dual
	// solutions. Where the dual is not unique (a degenerate optimum, such as
	// a limit that falls exactly between two segments) the left derivative,
	// the value lost by one unit less, can be larger; this reports the right
	// one. It is 0 for a limit that does not bind. (It would be NaN if
	// rounding made the complementary-slackness system unsolvable and no
	// other optimal dual were at hand; no test has produced that.)
	ShadowPrice float64
	// AtMinimum lists the services (indices into Result.Services) that got
	// only their minimum of this resource.
	AtMinimum []int
}

// InfeasibleError is the detail of an EINFEASIBLE error: the minimums alone,
// with what couplings add to them, do not fit. It unwraps to the
// *domain.Error, so errors.As finds either.
type InfeasibleError struct {
	// Resources lists each limit the minimums exceed.
	Resources []Insufficient
	// Services lists services whose own couplings cannot be met within their
	// desired amounts.
	Services []Unsatisfiable
	err      *domain.Error
}

// Insufficient says that a limit is below the need at minimums, in the
// spirit of Kubernetes' InsufficientResource.
type Insufficient struct {
	Resource Resource
	Reason   string // "Insufficient memory"
	// Requested is the need at minimums: the sum of the minimums, raised
	// where a coupling forces more.
	Requested float64
	Capacity  float64 // the limit
	Shortfall float64 // Requested - Capacity
	// Largest lists the largest minimums, largest first (at most five).
	Largest []Need
}

// Need is one service's need at its minimum.
type Need struct {
	Service int
	Name    string
	Amount  float64
}

// Unsatisfiable says that a service's couplings raise its minimum of a
// resource above what it desires. (Couplings in a cycle whose ratios
// multiply above one allow only zero: Desired is then 0 and Need the
// declared minimum.)
type Unsatisfiable struct {
	Service  int
	Name     string
	Resource Resource
	Need     float64 // the minimum the couplings force
	Desired  float64 // the most the service can have
}

func (e *InfeasibleError) Error() string { return e.err.Error() }

// Unwrap returns the *domain.Error with code EINFEASIBLE.
func (e *InfeasibleError) Unwrap() error { return e.err }

// largestShown is how many of the largest minimums an infeasibility report
// names.
const largestShown = 5

func newInfeasibleError(res []Insufficient, svc []Unsatisfiable) *InfeasibleError {
	var problems []domain.Problem
	var names []string
	for _, u := range svc {
		problems = append(problems, domain.Problem{
			Where: serviceWhere(u.Service, u.Name) + " " + u.Resource.String(),
			Message: fmt.Sprintf("couplings need at least %s but allow at most %s",
				formatAmount(u.Resource, u.Need), formatAmount(u.Resource, u.Desired)),
		})
	}
	for _, in := range res {
		names = append(names, in.Reason)
		var largest []string
		for _, n := range in.Largest {
			largest = append(largest, fmt.Sprintf("%s %s", serviceWhere(n.Service, n.Name), formatAmount(in.Resource, n.Amount)))
		}
		problems = append(problems, domain.Problem{
			Where: in.Resource.String(),
			Message: fmt.Sprintf("%s: minimums need %s, limit is %s, short by %s; largest minimums: %s",
				in.Reason, formatAmount(in.Resource, in.Requested), formatAmount(in.Resource, in.Capacity),
				formatAmount(in.Resource, in.Shortfall), strings.Join(largest, ", ")),
		})
	}
	msg := "the services' minimums do not fit within the limits"
	if len(names) > 0 {
		msg = strings.Join(names, ", ") + ": " + msg
	} else {
		msg = "couplings raise minimums above desired amounts"
	}
	return &InfeasibleError{Resources: res, Services: svc, err: &domain.Error{Code: domain.EINFEASIBLE, Message: msg, Problems: problems}}
}

// largestNeeds returns the largest needs, largest first, ties by index.
func largestNeeds(needs []Need) []Need {
	sort.SliceStable(needs, func(a, b int) bool { return needs[a].Amount > needs[b].Amount })
	if len(needs) > largestShown {
		needs = needs[:largestShown]
	}
	return append([]Need(nil), needs...)
}

// formatAmount writes an amount in the resource's base unit.
func formatAmount(r Resource, v float64) string {
	if r == CPU {
		return fmt.Sprintf("%gm", v)
	}
	return fmt.Sprintf("%g bytes", v)
}
