package pipeline

import (
	"fmt"
	"math"

	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/train"
)

// The monitor says which services of a composition are unhealthy, not
// which decision broke them: a decision touching an unhealthy service may
// be innocent, broken by another decision touching the same service. Fit
// sorts that out by expectation-maximisation under a noisy-AND model: a
// composition is healthy when every decision is fine, decision i being fine
// with probability σ(x_i), the network's score.
//
//   - A decision whose services are all healthy was fine: label 1.
//   - In a composition that failed, the suspects S are its decisions that
//     touch an unhealthy service (all of them, if none does). At least one
//     of them failed, so given the current network the probability that
//     suspect i was fine is (σ_i − P)/(1 − P), with P = Π_{j∈S} σ_j. That
//     soft label replaces the hard 0, and the network is trained again.
//
// Rounds of this (E: soft labels from the network; M: train on them) climb
// the likelihood of the compositions' outcomes under the model, so the
// score learns what each decision contributes, which is what AI_AGENT
// ranks candidates by.

// DefaultRounds is how many EM rounds Fit runs after the first fit.
const DefaultRounds = 8

// Fit trains on d with EM over its failed compositions and returns the
// last round's result, its Metrics recomputed on the hard labels. rounds
// < 0 takes DefaultRounds; 0 trains once on the hard labels.
func Fit(d *Data, cfg train.Config, rounds int) (*train.Result, error) {
	if rounds < 0 {
		rounds = DefaultRounds
	}
	hard := d.Dataset
	soft := hard
	soft.Y = append([]float64(nil), hard.Y...)
	// Rows by group, in order.
	groups := map[int64][]int{}
	for i, g := range hard.Group {
		groups[g] = append(groups[g], i)
	}
	var res *train.Result
	for round := 0; ; round++ {
		var err error
		if res, err = train.Train(soft, cfg); err != nil {
			return nil, fmt.Errorf("EM round %d: %w", round, err)
		}
		if round == rounds {
			break
		}
		// The MLP can express what the noisy-AND needs; the E-step uses it.
		estep(res.MLP, d, soft.Y, groups)
	}
	// Report against what was observed, not the soft labels.
	for kind, n := range map[string]*nn.Network{"logistic": res.Logistic, "mlp": res.MLP} {
		m, err := train.Evaluate(n, hard, res.Split.Test.Rows)
		if err != nil {
			return nil, err
		}
		res.Metrics[kind] = m
	}
	return res, nil
}

// VerdictNoise is how often the E-step takes a composition's verdict to
// be wrong (a flaky health check); the simulator flips 2%.
const VerdictNoise = 0.02

// maxExact bounds the suspects of a composition whose posterior the E-step
// computes exactly (2^maxExact failure sets); beyond it, approxStep.
const maxExact = 14

// estep sets the soft labels y of the suspects of every composition from
// the network's scores: the posterior probability, under the noisy-AND
// model, that each decision was fine given what the monitor saw. Every
// other row keeps its hard label (a decision whose touched services are
// all healthy was fine). See exactStep.
func estep(net *nn.Network, d *Data, y []float64, groups map[int64][]int) {
	hard := d.Dataset
	for g, rows := range groups {
		var suspects []int
		for _, i := range rows {
			if hard.Y[i] == 0 {
				suspects = append(suspects, i)
			}
		}
		if len(suspects) == 0 {
			continue
		}
		score := map[int]float64{}
		for _, i := range suspects {
			score[i] = net.Forward(hard.X[i])
		}
		if len(suspects) <= maxExact {
			exactStep(d, g, suspects, score, y)
		} else {
			approxStep(d, g, rows, score, y)
		}
	}
}

// exactStep is the exact posterior over which suspects failed: a set F of
// failed decisions explains what was seen when the services its members
// touch are exactly the unhealthy ones (a failed decision breaks every
// service it touches; services are reported truly), and the verdict says
// failed when F is not empty, with probability 1-FlipNoise. Its prior is
// the product of (1-σ) over F and σ over the other suspects.
func exactStep(d *Data, g int64, suspects []int, score map[int]float64, y []float64) {
	health := d.Health[g]
	broken := 0 // bit set of the unhealthy services, by index
	var index = map[int]int{}
	for s, ok := range health {
		if !ok {
			index[s] = len(index)
		}
	}
	if len(index) > 62 {
		approxStep(d, g, suspects, score, y)
		return
	}
	for _, b := range index {
		broken |= 1 << b
	}
	covers := make([]int, len(suspects))
	for k, i := range suspects {
		for _, s := range touchedOf(d, i) {
			if b, ok := index[s]; ok {
				covers[k] |= 1 << b
			}
		}
	}
	failedVerdict := d.Failed[g]
	var total float64
	fine := make([]float64, len(suspects)) // Σ L(F) over F without suspect k
	for set := 0; set < 1<<len(suspects); set++ {
		cover := 0
		l := 1.0
		for k, i := range suspects {
			if set&(1<<k) != 0 {
				cover |= covers[k]
				l *= 1 - score[i]
			} else {
				l *= score[i]
			}
		}
		if cover != broken {
			continue
		}
		if (set != 0) == failedVerdict {
			l *= 1 - VerdictNoise
		} else {
			l *= VerdictNoise
		}
		total += l
		for k := range suspects {
			if set&(1<<k) == 0 {
				fine[k] += l
			}
		}
	}
	if total <= 0 {
		return // nothing explains it (cannot happen under the model): keep the hard labels
	}
	for k, i := range suspects {
		y[i] = min(max(fine[k]/total, 0), 1)
	}
}

// approxStep is the E-step for a composition with too many suspects to
// enumerate: each unhealthy service is evidence that at least one decision
// touching it failed, combined across services as if independent; a failed
// composition with no unhealthy service seen says at least one suspect
// failed.
func approxStep(d *Data, g int64, rows []int, score map[int]float64, y []float64) {
	hard := d.Dataset
	if !d.Failed[g] {
		return
	}
	health := d.Health[g]
	P := map[int]float64{}
	for _, i := range rows {
		if _, ok := score[i]; !ok {
			continue
		}
		for _, s := range touchedOf(d, i) {
			if s < len(health) && !health[s] {
				if _, ok := P[s]; !ok {
					P[s] = 1
				}
				P[s] *= score[i]
			}
		}
	}
	if len(P) == 0 {
		p := 1.0
		for _, i := range rows {
			if s, ok := score[i]; ok {
				p *= s
			}
		}
		for _, i := range rows {
			if s, ok := score[i]; ok {
				y[i] = posterior(s, p)
			}
		}
		return
	}
	for _, i := range rows {
		if hard.Y[i] == 1 {
			continue
		}
		v, seen := score[i], false
		for _, s := range touchedOf(d, i) {
			if p, ok := P[s]; ok {
				seen = true
				v *= posterior(score[i], p) / max(score[i], 1e-12)
			}
		}
		if !seen {
			v = score[i]
		}
		y[i] = min(max(v, 0), 1)
	}
}

func touchedOf(d *Data, i int) []int {
	if i < len(d.Touched) {
		return d.Touched[i]
	}
	return nil
}

// posterior is the probability that a decision the network scores s was
// fine, given that at least one of a set of decisions including it, all of
// them fine with probability p under the network, failed.
func posterior(s, p float64) float64 {
	if 1-p < 1e-9 {
		return s
	}
	return min(max((s-p)/(1-p), 0), 1)
}

// OutcomeLogLoss is the mean log loss, over the compositions of rows, of
// the network's prediction of each composition's verdict under the
// noisy-AND model: P(healthy) = Π σ(x_i) over its decisions among rows.
// It is what EM climbs, so it is the fair yardstick between two models.
func OutcomeLogLoss(net *nn.Network, d *Data, rows []int) float64 {
	p := map[int64]float64{}
	for _, i := range rows {
		g := d.Group[i]
		if _, ok := p[g]; !ok {
			p[g] = 1
		}
		p[g] *= net.Forward(d.X[i])
	}
	if len(p) == 0 {
		return math.NaN()
	}
	var sum float64
	for g, q := range p {
		q = min(max(q, train.Clip), 1-train.Clip)
		if d.Failed[g] {
			sum -= math.Log(1 - q)
		} else {
			sum -= math.Log(q)
		}
	}
	return sum / float64(len(p))
}
