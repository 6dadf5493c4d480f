package train

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/snapcompose/snapcompose/training/nn"
)

// Config sets up a training run. In Train and Split a zero field takes the
// value of DefaultConfig, except Seed and L2, whose zero is meaningful.
type Config struct {
	// Seed drives the split, the MLP's initial weights and its shuffling.
	Seed uint64
	// TestFraction and ValidationFraction are fractions of the groups
	// (compositions) held out; each must be in (0, 1) and their sum < 1.
	TestFraction, ValidationFraction float64
	// Hidden are the sizes of the MLP's ReLU layers.
	Hidden []int
	// LearningRate is Adam's step size for the MLP.
	LearningRate float64
	// L2 penalises (L2/2)·‖W‖² in both models (biases are not penalised).
	L2 float64
	// BatchSize is the MLP's minibatch size.
	BatchSize int
	// MaxEpochs caps the MLP's epochs.
	MaxEpochs int
	// Patience is how many epochs without a better validation log loss end
	// the MLP's training.
	Patience int
	// Progress receives progress bars; nil is silent.
	Progress io.Writer
	// Weight, when set, says how many times training row i counts (values
	// below 1 count once): the row is repeated in the training split only,
	// so validation and test are as observed. Real history is weighted
	// above simulated history this way.
	Weight func(row int) int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Seed:               1,
		TestFraction:       0.2,
		ValidationFraction: 0.15,
		Hidden:             []int{32, 16},
		LearningRate:       1e-3,
		L2:                 1e-4,
		BatchSize:          256,
		MaxEpochs:          100,
		Patience:           8,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TestFraction == 0 {
		c.TestFraction = d.TestFraction
	}
	if c.ValidationFraction == 0 {
		c.ValidationFraction = d.ValidationFraction
	}
	if len(c.Hidden) == 0 {
		c.Hidden = d.Hidden
	}
	if c.LearningRate == 0 {
		c.LearningRate = d.LearningRate
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.MaxEpochs == 0 {
		c.MaxEpochs = d.MaxEpochs
	}
	if c.Patience == 0 {
		c.Patience = d.Patience
	}
	return c
}

func (c Config) check() error {
	frac := func(name string, v float64) error {
		if !(v > 0 && v < 1) {
			return fmt.Errorf("train: %s is %v, want a fraction in (0, 1)", name, v)
		}
		return nil
	}
	if err := frac("TestFraction", c.TestFraction); err != nil {
		return err
	}
	if err := frac("ValidationFraction", c.ValidationFraction); err != nil {
		return err
	}
	if c.TestFraction+c.ValidationFraction >= 1 {
		return fmt.Errorf("train: TestFraction %v + ValidationFraction %v leave no training groups", c.TestFraction, c.ValidationFraction)
	}
	for _, h := range c.Hidden {
		if h <= 0 {
			return fmt.Errorf("train: hidden layer size %d", h)
		}
	}
	if !(c.LearningRate > 0) || math.IsInf(c.LearningRate, 0) {
		return fmt.Errorf("train: LearningRate %v", c.LearningRate)
	}
	if !(c.L2 >= 0) || math.IsInf(c.L2, 0) {
		return fmt.Errorf("train: L2 %v", c.L2)
	}
	if c.BatchSize < 1 || c.MaxEpochs < 1 || c.Patience < 1 {
		return fmt.Errorf("train: BatchSize %d, MaxEpochs %d and Patience %d must be positive", c.BatchSize, c.MaxEpochs, c.Patience)
	}
	return nil
}

// History is how one model's training went.
type History struct {
	// Epochs run: MLP epochs, or LBFGS major iterations for the logistic
	// model.
	Epochs int
	// BestEpoch is the epoch whose weights were kept (1-based; the last
	// iteration for the logistic model).
	BestEpoch int
	// TrainLoss per epoch: the MLP's mean minibatch log loss, or the
	// logistic model's regularised objective.
	TrainLoss []float64
	// ValLoss is the validation log loss after each epoch or iteration.
	ValLoss []float64
	// BestValLoss is the validation log loss of the kept weights.
	BestValLoss float64
	// Stop says why training ended.
	Stop string
	// Duration is the wall time of the fit.
	Duration time.Duration
}

// Result is what Train produced.
type Result struct {
	// Best is Logistic or MLP, whichever has the lower validation log
	// loss (Logistic on a tie); Reason says why, in words, after the
	// model's Kind.
	Best          *nn.Network
	Reason        string
	Logistic, MLP *nn.Network
	// Metrics of "logistic" and "mlp" on the test split.
	Metrics map[string]Metrics
	// History of "logistic" and "mlp".
	History map[string]History
	// Split says which groups and rows went to train, validation and test.
	Split Splits
	// Names are the feature names, in column order.
	Names []string
}

// Train checks d, splits it by group, fits the scaler on the training rows,
// trains the logistic baseline and the MLP, picks the one with the lower
// validation log loss, and scores both on the test split.
func Train(d Dataset, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	names, err := d.check()
	if err != nil {
		return nil, err
	}
	tr, va, te, err := Split(d, cfg)
	if err != nil {
		return nil, err
	}
	pos, neg := false, false
	for _, i := range tr.Rows {
		pos, neg = pos || d.Y[i] > 0, neg || d.Y[i] < 1
	}
	if !pos || !neg {
		return nil, fmt.Errorf("train: the training split (%d rows in %d groups) has only label %v; try another Seed or more data", len(tr.Rows), len(tr.Groups), d.Y[tr.Rows[0]])
	}

	mean, std := scaler(d.X, tr.Rows)
	labels := func(rows []int) []float64 {
		y := make([]float64, len(rows))
		for r, i := range rows {
			y[r] = d.Y[i]
		}
		return y
	}
	weighted := tr.Rows
	if cfg.Weight != nil {
		weighted = nil
		for _, i := range tr.Rows {
			for range max(cfg.Weight(i), 1) {
				weighted = append(weighted, i)
			}
		}
	}
	zTr, yTr := standardised(d.X, weighted, mean, std), labels(weighted)
	zVa, yVa := standardised(d.X, va.Rows, mean, std), labels(va.Rows)

	bar := newProgress(cfg.Progress)
	res := &Result{
		Split:   Splits{Train: tr, Validation: va, Test: te},
		Names:   names,
		Metrics: map[string]Metrics{},
		History: map[string]History{},
	}
	var h History
	start := time.Now()
	if res.Logistic, h, err = fitLogistic(zTr, yTr, zVa, yVa, mean, std, cfg, bar); err != nil {
		return nil, err
	}
	h.Duration = time.Since(start)
	res.History["logistic"] = h
	start = time.Now()
	if res.MLP, h, err = fitMLP(zTr, yTr, zVa, yVa, mean, std, cfg, bar); err != nil {
		return nil, err
	}
	h.Duration = time.Since(start)
	res.History["mlp"] = h

	for kind, n := range map[string]*nn.Network{"logistic": res.Logistic, "mlp": res.MLP} {
		if res.Metrics[kind], err = Evaluate(n, d, te.Rows); err != nil {
			return nil, err
		}
	}
	lv, mv := res.History["logistic"].BestValLoss, res.History["mlp"].BestValLoss
	if mv < lv {
		res.Best = res.MLP
		res.Reason = fmt.Sprintf("its validation log loss %.5f is below logistic's %.5f", mv, lv)
	} else {
		res.Best = res.Logistic
		res.Reason = fmt.Sprintf("its validation log loss %.5f is not above mlp's %.5f (a tie goes to the simpler model)", lv, mv)
	}
	return res, nil
}

// Summary writes a table of both models' test metrics and training, the
// calibration bins of each, and which model was picked and why.
func (r *Result) Summary(w io.Writer) {
	kinds := []string{"logistic", "mlp"}
	te := r.Split.Test
	fmt.Fprintf(w, "split by composition: train %d rows / %d groups, validation %d / %d, test %d / %d\n",
		len(r.Split.Train.Rows), len(r.Split.Train.Groups), len(r.Split.Validation.Rows), len(r.Split.Validation.Groups),
		len(te.Rows), len(te.Groups))
	fmt.Fprintf(w, "test metrics:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tAUC\tlog loss\tBrier\taccuracy\tepochs\tbest epoch\tval log loss\ttime\t")
	for _, k := range kinds {
		m, h := r.Metrics[k], r.History[k]
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t%d\t%.4f\t%.1fs\t\n", k, m.AUC, m.LogLoss, m.Brier, m.Accuracy, h.Epochs, h.BestEpoch, h.BestValLoss, h.Duration.Seconds())
	}
	tw.Flush()
	for _, k := range kinds {
		fmt.Fprintf(w, "%s stopped: %s\n", k, r.History[k].Stop)
	}
	for _, k := range kinds {
		m := r.Metrics[k]
		fmt.Fprintf(w, "\ncalibration on test, %s (%d rows, %d positive):\n", k, m.N, m.Positives)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "bin\tcount\tmean predicted\tobserved\t")
		for _, b := range m.Calibration {
			if b.Count == 0 {
				fmt.Fprintf(tw, "%.1f-%.1f\t0\t-\t-\t\n", b.Lo, b.Hi)
				continue
			}
			fmt.Fprintf(tw, "%.1f-%.1f\t%d\t%.4f\t%.4f\t\n", b.Lo, b.Hi, b.Count, b.MeanPredicted, b.Observed)
		}
		tw.Flush()
	}
	if r.Best != nil {
		fmt.Fprintf(w, "\npicked %s: %s\n", r.Best.Kind, r.Reason)
	}
}
