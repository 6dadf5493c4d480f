// Package negotiate fits a composition under its resource_limits (DESIGN.md
// steps 4 and 5). It solves the allocation problem; while the services'
// minimums alone exceed a limit it first asks the providers that can concede
// (live sources, whose agents answer with a usage-based recommendation) for
// lower minimums, once, then drops optional services, lowest value first,
// never leaving a dependency dangling. What it cannot fit fails with an
// EINFEASIBLE error in the spirit of Kubernetes' "Insufficient memory".
//
// Every service's resources are valued with diminishing returns (see
// allocator.DiminishingReturns) at a weight that, until the learned agent
// supplies one, comes from its source's priority: 1 for the lowest priority
// in the composition, 2 for the next, and so on, halved for an optional
// service. Memory per core is kept at least at the least ratio the service
// declares (in its minimums or in what it asks for), so a service is never
// given cores without the memory to use them.
package negotiate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/allocator"
	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// Weigher gives each member of a composition the weight of its resources'
// value. It must return a positive, finite number per member.
type Weigher func(members []composer.Member) []float64

// Options configure Fit. The zero value weighs by priority, asks no one and
// costs nothing.
type Options struct {
	// Negotiators answer for the sources of their type; a type with none
	// (templates) has firm reservations.
	Negotiators map[domain.SourceType]domain.Negotiator
	// Weigh overrides the weights by priority.
	Weigh Weigher
	// Costs is the cost of one base unit of cpu, memory and disk, set
	// against the value (see allocator.Problem).
	Costs [allocator.NumResources]float64
	// ObserveAllocation, when set, is told how long each run of the
	// allocator took and with which method ("infeasible" when it found no
	// allocation).
	ObserveAllocation func(method string, d time.Duration)
}

// maxConcurrentAsks bounds how many providers are asked at once.
const maxConcurrentAsks = 8

// Fit allocates the composition's resources and returns its plan. When the
// composition cannot be fitted it returns the plan (Feasible false) with an
// EINFEASIBLE error. ctx bounds the providers' answers.
func Fit(ctx context.Context, comp *composer.Composition, limits domain.Resources, opt Options) (*domain.Plan, error) {
	weigh := opt.Weigh
	if weigh == nil {
		weigh = ByPriority
	}
	asked := false
	var drops []string
	for {
		members := comp.Members()
		weights := weigh(members)
		if len(weights) != len(members) {
			return nil, fmt.Errorf("negotiate: %d weights for %d services", len(weights), len(members))
		}
		p, err := problem(members, weights, limits, opt.Costs)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		res, err := allocator.Allocate(p)
		if opt.ObserveAllocation != nil {
			method := "infeasible"
			if err == nil {
				method = string(res.Method)
			}
			opt.ObserveAllocation(method, time.Since(start))
		}
		if err == nil {
			plan, err := comp.Plan()
			if err != nil {
				return nil, err
			}
			fill(plan, members, weights, res)
			return plan, nil
		}
		var inf *allocator.InfeasibleError
		if !errors.As(err, &inf) {
			return nil, fmt.Errorf("allocating: %w", err)
		}
		short := map[allocator.Resource]bool{}
		for _, in := range inf.Resources {
			short[in.Resource] = true
		}
		if len(short) > 0 && !asked {
			asked = true
			if concede(ctx, comp, members, short, opt.Negotiators) {
				continue
			}
		}
		if len(short) > 0 {
			if name, ok := dropOne(comp, members, weights, inf); ok {
				drops = append(drops, name)
				continue
			}
		}
		plan, perr := comp.Plan()
		if perr != nil {
			return nil, perr
		}
		plan.Feasible = false
		return plan, insufficient(inf, members, plan, drops)
	}
}

// ByPriority weighs each member by the rank of its source's priority among
// the composition's: 1 for the lowest, 2 for the next... An optional
// service weighs half as much.
func ByPriority(members []composer.Member) []float64 {
	var prios []int
	for _, m := range members {
		prios = append(prios, m.Source.Priority)
	}
	slices.Sort(prios)
	prios = slices.Compact(prios)
	w := make([]float64, len(members))
	for i, m := range members {
		rank, _ := slices.BinarySearch(prios, m.Source.Priority)
		w[i] = float64(1 + rank)
		if m.Optional {
			w[i] /= 2
		}
	}
	return w
}

// problem states the allocation problem of the members.
func problem(members []composer.Member, weights []float64, limits domain.Resources, costs [allocator.NumResources]float64) (*allocator.Problem, error) {
	p := &allocator.Problem{Limits: allocator.Amounts(limits), Costs: costs}
	var desiredTotal [allocator.NumResources]float64
	for _, m := range members {
		req := allocator.Amounts(m.Requested)
		for r := range allocator.NumResources {
			desiredTotal[r] += req[r]
		}
	}
	for i, m := range members {
		w := weights[i]
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("negotiate: service %s (%s) has weight %v; weights must be positive and finite", m.Name, m.Source.Ref(), w)
		}
		svc := allocator.Service{Name: m.Name}
		lo, hi := allocator.Amounts(m.Minimum), allocator.Amounts(m.Requested)
		for r := range allocator.NumResources {
			scale := p.Limits[r]
			if !(scale > 0) {
				scale = max(desiredTotal[r], 1)
			}
			svc.Demand[r] = allocator.DiminishingReturns(lo[r], max(hi[r], lo[r]), w, scale)
		}
		if c, ok := memoryPerCore(m); ok {
			svc.Couplings = append(svc.Couplings, c)
		}
		p.Services = append(p.Services, svc)
	}
	return p, nil
}

// memoryPerCore returns the coupling that keeps a member's memory per
// millicore at least the least ratio it declares, in what it asks for and
// in its minimums, so that both its request and its minimum satisfy it.
func memoryPerCore(m composer.Member) (allocator.Coupling, bool) {
	if m.Requested.CPUMillicores <= 0 || m.Requested.MemoryBytes <= 0 {
		return allocator.Coupling{}, false
	}
	ratio := float64(m.Requested.MemoryBytes) / float64(m.Requested.CPUMillicores)
	if m.Minimum.CPUMillicores > 0 {
		ratio = min(ratio, float64(m.Minimum.MemoryBytes)/float64(m.Minimum.CPUMillicores))
	}
	if !(ratio >= 1e-100) {
		return allocator.Coupling{}, false
	}
	return allocator.Coupling{Resource: allocator.Memory, PerUnitOf: allocator.CPU, Ratio: ratio}, true
}

// amount reads one resource of r.
func amount(r domain.Resources, res allocator.Resource) int64 {
	return [allocator.NumResources]int64{r.CPUMillicores, r.MemoryBytes, r.DiskBytes}[res]
}

// concede asks every provider that can concede, at once, for lower minimums
// of its services that need a short resource, and applies what they offer.
// It reports whether any minimum came down.
func concede(ctx context.Context, comp *composer.Composition, members []composer.Member, short map[allocator.Resource]bool, negotiators map[domain.SourceType]domain.Negotiator) bool {
	type ask struct {
		src      domain.Source
		services []string
		offers   []domain.Offer
		err      error
	}
	var asks []*ask
	bySource := map[domain.SourceRef]*ask{}
	for _, m := range members {
		if negotiators[m.Source.Type] == nil || !needs(m.Minimum, short) {
			continue
		}
		a := bySource[m.Source.Ref()]
		if a == nil {
			a = &ask{src: m.Source}
			bySource[m.Source.Ref()] = a
			asks = append(asks, a)
		}
		a.services = append(a.services, m.Original)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentAsks)
	for _, a := range asks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a.offers, a.err = negotiators[a.src.Type].Concede(ctx, a.src, a.services)
		}()
	}
	wg.Wait()

	granted := false
	for _, a := range asks {
		ref := a.src.Ref()
		if a.err != nil {
			for _, name := range a.services {
				comp.Refused(ref, name, "the provider could not be asked: "+a.err.Error())
			}
			continue
		}
		offered := map[string]domain.Offer{}
		for _, o := range a.offers {
			offered[o.Service] = o
		}
		for _, name := range a.services {
			o, ok := offered[name]
			if !ok {
				comp.Refused(ref, name, "the provider made no offer for this service")
				continue
			}
			cs, err := comp.Concede(ref, name, o.Minimum, o.Basis)
			if err != nil {
				comp.Refused(ref, name, err.Error())
				continue
			}
			granted = granted || cs.Granted
		}
	}
	return granted
}

// needs reports whether min asks for any of the short resources.
func needs(min domain.Resources, short map[allocator.Resource]bool) bool {
	for r := range short {
		if amount(min, r) > 0 {
			return true
		}
	}
	return false
}

// dropOne drops the optional service of least value whose leaving relieves
// a short resource and leaves no dependency dangling: everything that
// depends on it must be optional too, and leaves with it. It returns the
// service's name.
func dropOne(comp *composer.Composition, members []composer.Member, weights []float64, inf *allocator.InfeasibleError) (string, bool) {
	short := map[allocator.Resource]bool{}
	for _, in := range inf.Resources {
		short[in.Resource] = true
	}
	best, bestValue := -1, 0.0
	for i, m := range members {
		if !m.Optional {
			continue
		}
		value, relief, ok := weights[i], needs(m.Minimum, short), true
		for _, d := range m.Dependents {
			if !members[d].Optional {
				ok = false
				break
			}
			value += weights[d]
			relief = relief || needs(members[d].Minimum, short)
		}
		if !ok || !relief {
			continue
		}
		// Least value first; between equals, the one that frees more of
		// the first short resource; then by name, so the order is stable.
		if best < 0 || value < bestValue || value == bestValue && better(members, i, best, inf.Resources[0].Resource) {
			best, bestValue = i, value
		}
	}
	if best < 0 {
		return "", false
	}
	m := members[best]
	var parts []string
	for _, in := range inf.Resources {
		parts = append(parts, fmt.Sprintf("%s: need %s at minimums, limit %s", in.Reason,
			format(in.Resource, in.Requested), format(in.Resource, in.Capacity)))
	}
	reason := fmt.Sprintf("optional, and of least value (weight %s with its dependents) among the optional services whose minimums take %s; dropped to fit (%s)",
		trimFloat(bestValue), shortNames(inf.Resources), strings.Join(parts, "; "))
	comp.Drop(m.Source.Ref(), m.Name, reason)
	return m.Name, true
}

// better reports whether dropping i (with its dependents) frees more of
// resource r than dropping j, or as much with i first by name.
func better(members []composer.Member, i, j int, r allocator.Resource) bool {
	ri, rj := freed(members, i, r), freed(members, j, r)
	if ri != rj {
		return ri > rj
	}
	return members[i].Name < members[j].Name
}

// freed is how much of r dropping i and its dependents frees.
func freed(members []composer.Member, i int, r allocator.Resource) int64 {
	n := amount(members[i].Minimum, r)
	for _, d := range members[i].Dependents {
		n += amount(members[d].Minimum, r)
	}
	return n
}

func shortNames(in []allocator.Insufficient) string {
	var s []string
	for _, x := range in {
		s = append(s, x.Resource.String())
	}
	return strings.Join(s, " and ")
}

// fill writes the allocation into the plan.
func fill(plan *domain.Plan, members []composer.Member, weights []float64, res *allocator.Result) {
	type key struct {
		ref  domain.SourceRef
		name string
	}
	at := map[key]int{}
	for i, m := range members {
		at[key{m.Source.Ref(), m.Name}] = i
	}
	plan.Totals = domain.Resources{}
	for j := range plan.Services {
		s := &plan.Services[j]
		i, ok := at[key{s.Source, s.Name}]
		if !ok {
			continue
		}
		a := res.Services[i]
		s.Allocation = whole(a.Units, s.Minimum, s.Requested)
		s.Weight = weights[i]
		s.AtMinimum = nil
		for r := range allocator.NumResources {
			if a.AtMinimum[r] && amount(s.Requested, allocator.Resource(r)) > amount(s.Minimum, allocator.Resource(r)) {
				s.AtMinimum = append(s.AtMinimum, allocator.Resource(r).String())
			}
		}
		plan.Totals = plan.Totals.Add(s.Allocation)
	}
	report := &domain.AllocatorReport{Method: string(res.Method), Objective: res.Objective}
	for r, l := range res.Limits {
		report.Limits = append(report.Limits, domain.LimitReport{
			Resource: allocator.Resource(r).String(), Limit: amount(plan.Limits, allocator.Resource(r)),
			Used: amount(plan.Totals, allocator.Resource(r)), Binding: l.Binding, ShadowPrice: l.ShadowPrice,
		})
	}
	plan.Allocator = report
	plan.Feasible = true
	for j := range plan.Conflicts {
		c := &plan.Conflicts[j]
		r, ok := resourceOf(c.Kind)
		if !ok || c.Resolution == nil || c.Resolution.Action != domain.Allocate {
			continue
		}
		l := res.Limits[r]
		c.Resolution.Detail += fmt.Sprintf(". Allocated %s of the %s requested within the limit of %s",
			format(r, float64(amount(plan.Totals, r))), format(r, float64(amount(plan.Requested, r))), format(r, l.Limit))
		if l.Binding {
			price, unit := report.Limits[r].ShadowPerUnit()
			c.Resolution.Detail += fmt.Sprintf("; the limit binds (one more %s is worth %s)", unit, trimFloat(price))
		}
	}
}

// mebibyte is the granularity of memory and disk allocations below what a
// service asks for.
const mebibyte = 1 << 20

// whole rounds memory and disk allocations below the request down to whole
// MiB, as a container runtime is told them, but never below the minimum.
// Rounding down keeps every total within its limit.
func whole(r, least, asked domain.Resources) domain.Resources {
	down := func(x, lo, hi int64) int64 {
		if x >= hi {
			return x
		}
		return max(x-x%mebibyte, min(x, lo))
	}
	r.MemoryBytes = down(r.MemoryBytes, least.MemoryBytes, asked.MemoryBytes)
	r.DiskBytes = down(r.DiskBytes, least.DiskBytes, asked.DiskBytes)
	return r
}

func resourceOf(k domain.ClaimKind) (allocator.Resource, bool) {
	switch k {
	case domain.CPUClaim:
		return allocator.CPU, true
	case domain.MemoryClaim:
		return allocator.Memory, true
	case domain.DiskClaim:
		return allocator.Disk, true
	}
	return 0, false
}

func format(r allocator.Resource, x float64) string {
	if math.IsInf(x, 1) {
		return "unlimited"
	}
	n := int64(math.Min(x, math.MaxInt64/2))
	if r == allocator.CPU {
		return quantity.FormatCPU(n)
	}
	return quantity.FormatBytes(n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func trimFloat(x float64) string { return fmt.Sprintf("%.3g", x) }

// insufficient builds the error of a composition that cannot be fitted: per
// short resource, the need at minimums, the limit, the shortfall and the
// largest minimums with their sources.
func insufficient(inf *allocator.InfeasibleError, members []composer.Member, plan *domain.Plan, drops []string) error {
	var problems []domain.Problem
	var reasons []string
	for _, in := range inf.Resources {
		largest := slices.Clone(in.Largest)
		slices.SortStableFunc(largest, func(a, b allocator.Need) int { return cmp.Compare(b.Amount, a.Amount) })
		var big []string
		for _, n := range largest {
			m := members[n.Service]
			big = append(big, fmt.Sprintf("%s %s (%s)", m.Name, format(in.Resource, n.Amount), m.Source.Ref()))
		}
		reasons = append(reasons, in.Reason)
		problems = append(problems, domain.Problem{
			Where: in.Resource.String(),
			Message: fmt.Sprintf("%s: the services need %s at their minimums, the limit is %s, %s short; largest minimums: %s",
				in.Reason, format(in.Resource, in.Requested), format(in.Resource, in.Capacity),
				format(in.Resource, in.Shortfall), strings.Join(big, ", ")),
		})
	}
	for _, u := range inf.Services {
		m := members[u.Service]
		problems = append(problems, domain.Problem{
			Where: fmt.Sprintf("service %s (%s) %s", m.Name, m.Source.Ref(), u.Resource),
			Message: fmt.Sprintf("its memory per core needs at least %s but it asks for at most %s",
				format(u.Resource, u.Need), format(u.Resource, u.Desired)),
		})
	}
	granted := 0
	for _, c := range plan.Concessions {
		if c.Granted {
			granted++
		}
	}
	msg := fmt.Sprintf("the composition does not fit its resource_limits even at its minimums (%s), after %s (%d granted) and %s",
		strings.Join(reasons, ", "), plural(len(plan.Concessions), "concession asked", "concessions asked"), granted,
		plural(len(drops), "optional service dropped", "optional services dropped"))
	if len(reasons) == 0 {
		msg = "the composition cannot be allocated: a service's couplings cannot be met"
	}
	return &domain.Error{Code: domain.EINFEASIBLE, Message: msg, Problems: problems}
}
