package allocator

import (
	"fmt"
	"math"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Resource is one of the resources a composition allocates.
type Resource int

const (
	CPU Resource = iota
	Memory
	Disk
)

// NumResources is the number of resources; arrays indexed by Resource have
// this length.
const NumResources = 3

var resourceNames = [NumResources]string{"cpu", "memory", "disk"}

func (r Resource) String() string {
	if r < 0 || r >= NumResources {
		return fmt.Sprintf("Resource(%d)", int(r))
	}
	return resourceNames[r]
}

// MaxSegments bounds the segments of one demand. The general (simplex) path
// and the per-service solver of services with several couplings enumerate
// breakpoint combinations, so the bound keeps them cheap; three to five
// segments describe diminishing returns well.
const MaxSegments = 16

// Segment is one linear piece of a concave value: Length units, each worth
// Slope (in value per base unit of the resource).
type Segment struct {
	Length float64
	Slope  float64
}

// Demand is one service's claim on one resource, in the resource's base unit:
// millicores for cpu, bytes for memory and disk. Amounts lie in [0, 2^62].
type Demand struct {
	// Min is the least the service accepts; the allocation never goes below.
	Min float64
	// Desired is what the service asks for; the allocation never goes above.
	Desired float64
	// Value prices the units from Min to Desired: segments in order, lengths
	// summing to Desired-Min (to a relative 1e-9), slopes non-increasing
	// (diminishing returns), so the value is concave and piecewise linear.
	// Slopes may be any number within ±1e100; the allocator subtracts the
	// resource's cost from them. At most MaxSegments segments.
	Value []Segment
}

// Coupling ties two resources of one service:
// Amount[Resource] >= Ratio * Amount[PerUnitOf]. "Memory per core never below
// what the service declares" is Coupling{Memory, CPU, bytesPerMillicore}.
// Ratio lies in [1e-100, 1e100].
type Coupling struct {
	Resource  Resource
	PerUnitOf Resource
	Ratio     float64
}

// Service is one service competing for the resources.
type Service struct {
	Name      string
	Demand    [NumResources]Demand
	Couplings []Coupling
}

// Problem is an allocation problem: services, the limits their total must
// stay within, and a cost per unit of each resource.
type Problem struct {
	Services []Service
	// Limits caps the total allocation of each resource, in base units;
	// +Inf means no limit.
	Limits [NumResources]float64
	// Costs is the cost of one base unit of each resource (>= 0), set against
	// the value: a unit is worth allocating only where its value exceeds its
	// cost.
	Costs [NumResources]float64
}

// ValueSegments is the number of segments DiminishingReturns builds.
const ValueSegments = 3

// DiminishingReturns returns the demand of a service of the given weight for
// the units from min to desired: three equal segments whose slopes halve,
// weight/scale * (1, 1/2, 1/4).
//
// The weight says how much the service matters (from its priority today,
// from the model's predicted impact later). Pass the resource's limit as
// scale (or, when there is no limit, the total desired amount): a unit is
// then worth weight per whole limit at the first segment's rate, which makes
// one weight comparable across resources counted in millicores and in bytes.
// Halving slopes give diminishing returns: the first third of what a
// service asks for above its minimum is worth four times the last third, so
// under pressure every service keeps some headroom before any gets all of it.
func DiminishingReturns(min, desired, weight, scale float64) Demand {
	d := Demand{Min: min, Desired: desired}
	if !(desired > min) {
		return d
	}
	length := (desired - min) / ValueSegments
	slope := weight / scale
	d.Value = make([]Segment, ValueSegments)
	for k := range d.Value {
		d.Value[k] = Segment{Length: length, Slope: slope}
		slope /= 2
	}
	// The lengths must add up to desired-min exactly; give the rounding to
	// the last segment.
	d.Value[ValueSegments-1].Length = (desired - min) - 2*length
	return d
}

// KeepRatio returns the coupling that keeps the service's res per unit of of
// at least what its desired amounts declare: Ratio = Desired[res] /
// Desired[of]. It reports false when no ratio is declared (either desired
// amount is zero).
func KeepRatio(s *Service, res, of Resource) (Coupling, bool) {
	num, den := s.Demand[res].Desired, s.Demand[of].Desired
	if !(num > 0) || !(den > 0) || res == of {
		return Coupling{}, false
	}
	return Coupling{Resource: res, PerUnitOf: of, Ratio: num / den}, true
}

// Amounts returns r as an array indexed by Resource.
func Amounts(r domain.Resources) [NumResources]float64 {
	return [NumResources]float64{float64(r.CPUMillicores), float64(r.MemoryBytes), float64(r.DiskBytes)}
}

// Bounds on magnitudes keep every product the solver forms finite:
// quantities fit int64 base units, and values and ratios stay far from
// overflow.
const (
	maxQuantity = 1 << 62
	maxPrice    = 1e100
)

// sumTolerance is how far a demand's segment lengths may add up away from
// Desired-Min, relative to Desired.
const sumTolerance = 1e-9

// validate returns an EINVALID error listing every fault of p, or nil.
func validate(p *Problem) error {
	var problems []domain.Problem
	add := func(where, format string, args ...any) {
		problems = append(problems, domain.Problem{Where: where, Message: fmt.Sprintf(format, args...)})
	}
	for r := range NumResources {
		res := Resource(r)
		if l := p.Limits[r]; math.IsNaN(l) || l < 0 {
			add("limits."+res.String(), "must be a number >= 0 (or +Inf for no limit), got %v", l)
		}
		if c := p.Costs[r]; !(c >= 0 && c <= maxPrice) {
			add("costs."+res.String(), "must be a number from 0 to %g, got %v", maxPrice, c)
		}
	}
	for i := range p.Services {
		s := &p.Services[i]
		for r := range NumResources {
			if d := &s.Demand[r]; !plainDemand(d) {
				validateDemand(d, serviceWhere(i, s.Name)+" "+Resource(r).String(), add)
			}
		}
		for j, c := range s.Couplings {
			known := func(r Resource) bool { return r >= 0 && r < NumResources }
			if known(c.Resource) && known(c.PerUnitOf) && c.Resource != c.PerUnitOf && c.Ratio >= 1/maxPrice && c.Ratio <= maxPrice {
				continue
			}
			cw := fmt.Sprintf("%s couplings[%d]", serviceWhere(i, s.Name), j)
			switch {
			case c.Resource < 0 || c.Resource >= NumResources:
				add(cw+".resource", "unknown resource %d: want cpu (0), memory (1) or disk (2)", int(c.Resource))
			case c.PerUnitOf < 0 || c.PerUnitOf >= NumResources:
				add(cw+".per_unit_of", "unknown resource %d: want cpu (0), memory (1) or disk (2)", int(c.PerUnitOf))
			case c.Resource == c.PerUnitOf:
				add(cw, "couples %s to itself", c.Resource)
			}
			if !(c.Ratio >= 1/maxPrice && c.Ratio <= maxPrice) {
				add(cw+".ratio", "must be a number from %g to %g, got %v", 1/maxPrice, maxPrice, c.Ratio)
			}
		}
	}
	if len(problems) > 0 {
		return domain.Invalid("invalid allocation problem", problems)
	}
	return nil
}

func validateDemand(d *Demand, where string, add func(where, format string, args ...any)) {
	okMin, okDesired := d.Min >= 0 && d.Min <= maxQuantity, d.Desired >= 0 && d.Desired <= maxQuantity
	if !okMin {
		add(where+".min", "must be a number from 0 to %g, got %v", float64(maxQuantity), d.Min)
	}
	if !okDesired {
		add(where+".desired", "must be a number from 0 to %g, got %v", float64(maxQuantity), d.Desired)
	}
	if okMin && okDesired && d.Min > d.Desired {
		add(where+".min", "%v exceeds desired %v", d.Min, d.Desired)
		return
	}
	if len(d.Value) > MaxSegments {
		add(where+".value", "has %d segments, at most %d allowed", len(d.Value), MaxSegments)
		return
	}
	// Field names are built only for faults: validation runs on every
	// allocation of thousands of services.
	seg := func(k int, field string) string { return fmt.Sprintf("%s.value[%d].%s", where, k, field) }
	sum, prev, prevK, ok := 0.0, math.Inf(1), -1, true
	for k, sg := range d.Value {
		if !(sg.Length >= 0 && sg.Length <= maxQuantity) {
			add(seg(k, "length"), "must be a number from 0 to %g, got %v", float64(maxQuantity), sg.Length)
			ok = false
		}
		if !(math.Abs(sg.Slope) <= maxPrice) {
			add(seg(k, "slope"), "must be a number from %g to %g, got %v", -maxPrice, maxPrice, sg.Slope)
			ok = false
			continue
		}
		// A segment of zero length carries no value, so its slope does not
		// count against concavity.
		if sg.Length > 0 {
			if sg.Slope > prev {
				add(seg(k, "slope"), "%v exceeds the slope %v of segment %d: slopes must not increase (the value must be concave)", sg.Slope, prev, prevK)
				ok = false
			}
			prev, prevK = sg.Slope, k
		}
		sum += sg.Length
	}
	if !ok || !okMin || !okDesired {
		return
	}
	span := d.Desired - d.Min
	if math.Abs(sum-span) > sumTolerance*math.Max(1, d.Desired) {
		if len(d.Value) == 0 {
			add(where+".value", "is empty but desired %v exceeds min %v: give the value of the units in between", d.Desired, d.Min)
		} else {
			add(where+".value", "segment lengths add up to %v, want desired-min = %v", sum, span)
		}
	}
}

// plainDemand reports, cheaply, that d is certainly valid: the common case,
// checked without building any field name.
func plainDemand(d *Demand) bool {
	if !(d.Min >= 0 && d.Min <= d.Desired && d.Desired <= maxQuantity) || len(d.Value) > MaxSegments {
		return false
	}
	sum, prev := 0.0, math.Inf(1)
	for _, sg := range d.Value {
		if !(sg.Length >= 0 && sg.Length <= maxQuantity) || !(math.Abs(sg.Slope) <= maxPrice) {
			return false
		}
		if sg.Length > 0 {
			if sg.Slope > prev {
				return false
			}
			prev = sg.Slope
		}
		sum += sg.Length
	}
	return math.Abs(sum-(d.Desired-d.Min)) <= sumTolerance*math.Max(1, d.Desired)
}

func serviceWhere(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("services[%d]", i)
	}
	return fmt.Sprintf("services[%d] (%s)", i, name)
}
