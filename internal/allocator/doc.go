// Package allocator fits services under resource limits: it finds the
// allocation of cpu, memory and disk that maximises total value, with
// diminishing returns, minus a cost per unit, within the limits and each
// service's couplings, and explains it (which limits bind, what one more
// unit of each would be worth, who got only their minimum).
//
// # The problem
//
// Service i asks for between Min and Desired of each resource r. The value
// of the units above Min is concave and piecewise linear: segments k of
// length len_irk and slope v_irk, slopes non-increasing (DiminishingReturns
// builds three from a weight). Each unit costs c_r. With
// alloc_ir = Min_ir + sum_k x_irk and 0 <= x_irk <= len_irk the allocator
// solves the linear program
//
//	maximise   sum (v_irk - c_r) x_irk
//	subject to sum_i alloc_ir <= L_r                     for every limit
//	           alloc_ia >= ratio * alloc_ib              for every coupling
//
// exactly. Where v - c < 0 a segment stays empty unless a coupling needs
// it. Quantities are float64 in base units (millicores, bytes); Result
// carries them as computed and rounded down to whole units.
//
// # Two paths
//
// Allocate is the structured path, for any size. A resource no coupling
// touches is a continuous knapsack: segments fill in order of net slope
// until the limit, which is exact, and the slope the limit cuts is its
// price. Coupled resources are solved by Lagrangian decomposition: pricing
// the (at most three) limits splits the problem into one tiny LP per
// service, answered in closed form (one coupling) or by picking the best of
// the service's few vertices (several couplings), and Kelley's cutting
// planes find the optimal prices, with the allocation recovered as a convex
// mix of the services' responses (Dantzig-Wolfe). The result carries a
// certificate: the allocation is feasible and worth the best dual bound to
// 1e-9 (relative); Result.Gap is the bound minus the objective. Solving
// 10,000 services with three resources and three segments each, every
// limit binding and every service coupling memory to cpu, takes about
// 30 ms on one core (see the benchmarks), far less than GLPK.
//
// AllocateSimplex is the general path: gonum's dense textbook Simplex on the
// whole LP, written as the Dantzig-Wolfe master over every vertex of every
// service (one row per service and per limit). It agrees with Allocate and
// with GLPK (the tests check both on hundreds of random instances) but is
// meant for tens of services.
//
// # Shadow prices
//
// LimitReport.ShadowPrice is the exact LP dual of a binding limit, derived
// from the optimal allocation by complementary slackness, the same way for
// both paths. Where the optimal dual is not unique (a degenerate optimum:
// a limit that falls exactly at a breakpoint between segments, or equals
// the services' minimums) the price reported is the smallest optimal dual,
// which is the right derivative of the optimum in the limit: the value of
// one more unit. The left derivative (the value lost by one unit less) can
// be larger and is not reported.
//
// # Errors
//
// Malformed input (NaN, negative or out-of-range amounts, min above
// desired, rising slopes, lengths that do not add up, a coupling naming an
// unknown resource) gives a *domain.Error with code EINVALID listing every
// fault with its service and field. Minimums that cannot fit (their sum,
// raised where couplings force more, above a limit; or couplings that
// cannot be met within a service's desired amounts) give an
// *InfeasibleError: it unwraps to a *domain.Error with code EINFEASIBLE and
// carries, per short resource, the need at minimums, the limit, the
// shortfall and the largest minimums. Nothing panics; a solver fault would
// be an EINTERNAL error.
package allocator
