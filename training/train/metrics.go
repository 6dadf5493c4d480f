package train

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/snapcompose/snapcompose/training/nn"
)

// Clip bounds the probabilities that log loss takes the log of.
const Clip = 1e-7

// Bin is one calibration bin: the rows whose predicted probability fell in
// [Lo, Hi) ([0.9, 1] for the last).
type Bin struct {
	Lo, Hi        float64
	Count         int
	MeanPredicted float64 // mean predicted probability; 0 when Count is 0
	Observed      float64 // fraction of positive labels; 0 when Count is 0
}

// Metrics scores probabilities against labels.
type Metrics struct {
	N, Positives int
	// AUC is the area under the ROC curve, by rank with ties averaged
	// (the Mann–Whitney statistic); NaN when only one class is present.
	AUC float64
	// LogLoss is the mean negative log likelihood with probabilities
	// clipped to [Clip, 1-Clip].
	LogLoss float64
	// Brier is the mean squared difference of probability and label.
	Brier float64
	// Accuracy counts a probability ≥ 0.5 as predicting 1.
	Accuracy float64
	// Calibration has 10 equal-width bins over [0, 1].
	Calibration []Bin
}

// Score computes the Metrics of probabilities p for labels y (0 or 1); p
// and y must have the same length (Score panics otherwise).
// Empty input gives N 0 and NaN scores.
func Score(p, y []float64) Metrics {
	if len(p) != len(y) {
		panic(fmt.Sprintf("train: Score of %d probabilities and %d labels", len(p), len(y)))
	}
	m := Metrics{N: len(p), Calibration: make([]Bin, 10)}
	for k := range m.Calibration {
		m.Calibration[k].Lo = float64(k) / 10
		m.Calibration[k].Hi = float64(k+1) / 10
	}
	if len(p) == 0 {
		m.AUC, m.LogLoss, m.Brier, m.Accuracy = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return m
	}
	var ll, brier float64
	correct := 0
	for i, pi := range p {
		yi := y[i]
		if yi == 1 {
			m.Positives++
		}
		ll += pointLoss(pi, yi)
		brier += (pi - yi) * (pi - yi)
		if (pi >= 0.5) == (yi == 1) {
			correct++
		}
		k := min(max(int(pi*10), 0), 9)
		b := &m.Calibration[k]
		b.Count++
		b.MeanPredicted += pi
		b.Observed += yi
	}
	n := float64(len(p))
	m.LogLoss = ll / n
	m.Brier = brier / n
	m.Accuracy = float64(correct) / n
	for k := range m.Calibration {
		if b := &m.Calibration[k]; b.Count > 0 {
			b.MeanPredicted /= float64(b.Count)
			b.Observed /= float64(b.Count)
		}
	}
	m.AUC = auc(p, y)
	return m
}

// pointLoss is the clipped log loss of one probability.
func pointLoss(p, y float64) float64 {
	p = min(max(p, Clip), 1-Clip)
	switch y {
	case 1:
		return -math.Log(p)
	case 0:
		return -math.Log(1 - p)
	}
	// A soft label: the cross-entropy.
	return -y*math.Log(p) - (1-y)*math.Log(1-p)
}

// logLoss is the mean clipped log loss.
func logLoss(p, y []float64) float64 {
	var s float64
	for i := range p {
		s += pointLoss(p[i], y[i])
	}
	return s / float64(len(p))
}

// auc ranks p ascending, gives tied values their average rank, and returns
// (sum of positive ranks − P(P+1)/2) / (P·N).
func auc(p, y []float64) float64 {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var pos, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && p[idx[j]] == p[idx[i]] {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of the 1-based ranks i+1 … j
		for _, k := range idx[i:j] {
			if y[k] == 1 {
				pos++
				rankSum += rank
			}
		}
		i = j
	}
	neg := float64(len(p)) - pos
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// Predict returns n's probability for the given rows of X (all rows when
// rows is nil). It computes what n.Forward does, batched through gonum.
func Predict(n *nn.Network, X [][]float64, rows []int) ([]float64, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	if rows == nil {
		rows = make([]int, len(X))
		for i := range rows {
			rows[i] = i
		}
	}
	f := n.Inputs()
	z := mat.NewDense(max(len(rows), 1), f, nil)
	for r, i := range rows {
		if i < 0 || i >= len(X) {
			return nil, fmt.Errorf("train: row %d out of range [0, %d)", i, len(X))
		}
		if len(X[i]) != f {
			return nil, fmt.Errorf("train: row %d has %d features, the network takes %d", i, len(X[i]), f)
		}
		standardise(z.RawRowView(r), X[i], n.Mean, n.Std)
	}
	if len(rows) == 0 {
		return []float64{}, nil
	}
	return predictZ(n, z), nil
}

// Evaluate scores n on the given rows of d (all rows when rows is nil).
func Evaluate(n *nn.Network, d Dataset, rows []int) (Metrics, error) {
	if len(d.Y) != len(d.X) {
		return Metrics{}, fmt.Errorf("train: %d rows of X and %d labels", len(d.X), len(d.Y))
	}
	p, err := Predict(n, d.X, rows)
	if err != nil {
		return Metrics{}, err
	}
	y := make([]float64, len(p))
	for r := range p {
		i := r
		if rows != nil {
			i = rows[r]
		}
		y[r] = d.Y[i]
	}
	return Score(p, y), nil
}
