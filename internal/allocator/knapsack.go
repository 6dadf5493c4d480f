package allocator

import "math"

// knapsack allocates resource r, which no service couples to another, and
// writes the amounts into alloc. The problem is then a continuous knapsack:
// fill segments in order of net slope, largest first, while the slope is
// positive and the limit lasts. This is exact (exchange argument: a unit on
// a lower slope could move to a higher one without losing value), and the
// slope of the segment the limit cuts is the limit's price. Segments tied at
// that slope share what is left in proportion to their lengths, so equal
// claims are treated equally. The cut is found by weighted selection rather
// than a full sort: expected linear time.
func (md *model) knapsack(r int, alloc []float64) {
	var segs []piece
	total, base := 0.0, 0.0
	for i := range md.n {
		ir := i*R + r
		alloc[ir] = md.min[ir]
		base += md.min[ir]
		for k := md.off[ir]; k < md.off[ir+1]; k++ {
			if md.segSlope[k] > 0 {
				segs = append(segs, piece{md.segSlope[k], md.segLen[k], k})
				total += md.segLen[k]
			}
		}
	}
	capacity := md.limit[r] - base
	if !md.bindable[r] || total <= capacity {
		for _, sg := range segs {
			alloc[md.segOwner[sg.idx]] += sg.length
		}
		return
	}
	if !(capacity > 0) {
		return
	}
	price, frac := marginal(segs, capacity)
	for _, sg := range segs {
		switch {
		case sg.slope > price:
			alloc[md.segOwner[sg.idx]] += sg.length
		case sg.slope == price:
			alloc[md.segOwner[sg.idx]] += frac * sg.length
		}
	}
}

// piece is a segment for selection.
type piece struct {
	slope, length float64
	idx           int32
}

// marginal returns the slope p at which filling segments in decreasing
// order of slope reaches capacity, and the fraction of the segments of slope
// p that fits: those above p fill completely, those below stay empty. It
// requires 0 < capacity < the total length, and reorders ps.
func marginal(ps []piece, capacity float64) (price, frac float64) {
	need := capacity
	lo, hi := 0, len(ps)
	for lo < hi {
		p := pivot(ps[lo:hi])
		// Three-way partition of ps[lo:hi]: above p, equal, below.
		a, e, b := lo, lo, hi
		above, equal := 0.0, 0.0
		for e < b {
			switch s := ps[e].slope; {
			case s > p:
				above += ps[e].length
				ps[a], ps[e] = ps[e], ps[a]
				a++
				e++
			case s < p:
				b--
				ps[e], ps[b] = ps[b], ps[e]
			default:
				equal += ps[e].length
				e++
			}
		}
		switch {
		case need < above:
			hi = a
		case need < above+equal:
			return p, (need - above) / equal
		default:
			need -= above + equal
			lo = b
		}
	}
	// Rounding left capacity past the last segment: all of it fits.
	return math.Inf(-1), 1
}

// pivot returns the median slope of the first, middle and last pieces.
func pivot(ps []piece) float64 {
	x, y, z := ps[0].slope, ps[len(ps)/2].slope, ps[len(ps)-1].slope
	if x > y {
		x, y = y, x
	}
	if y > z {
		y = z
	}
	return max(x, y)
}
