package train

import (
	"math"
	"math/rand/v2"
)

// Streams of the seeded generator, one per use, so that changing how one
// part draws does not shift another's numbers.
const (
	streamSplit   = 0x5eed_0001
	streamInit    = 0x5eed_0002
	streamShuffle = 0x5eed_0003
)

// rng draws only from PCG's Uint64, whose sequence is fixed by its
// definition, and derives every other distribution here, so the numbers do
// not depend on how math/rand/v2 maps bits to floats or ranges.
type rng struct{ src *rand.PCG }

func newRNG(seed, stream uint64) *rng { return &rng{rand.NewPCG(seed, stream)} }

// float returns a uniform number in [0, 1).
func (r *rng) float() float64 { return float64(r.src.Uint64()>>11) * 0x1p-53 }

// intn returns a uniform integer in [0, n), n > 0, by rejection.
func (r *rng) intn(n int) int {
	un := uint64(n)
	limit := math.MaxUint64 - math.MaxUint64%un
	for {
		if v := r.src.Uint64(); v < limit {
			return int(v % un)
		}
	}
}

// norm returns a standard normal number (Box–Muller, one of the pair).
func (r *rng) norm() float64 {
	u1 := 1 - r.float() // (0, 1]
	u2 := r.float()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// shuffle permutes s in place (Fisher–Yates).
func (r *rng) shuffle(s []int) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}

func (r *rng) shuffleInt64(s []int64) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}
