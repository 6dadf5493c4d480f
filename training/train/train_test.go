package train

import (
	"bytes"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/training/nn"
)

// synth makes groups×per rows of f features drawn by draw, labelled by
// label (which may use r for noise). Group ids are not contiguous numbers,
// to catch code that assumes they are.
func synth(seed uint64, groups, per, f int, draw func(r *rand.Rand) float64, label func(x []float64, r *rand.Rand) float64) Dataset {
	r := rand.New(rand.NewPCG(seed, 99))
	var d Dataset
	for g := range groups {
		for range per {
			x := make([]float64, f)
			for j := range x {
				x[j] = draw(r)
			}
			d.X = append(d.X, x)
			d.Y = append(d.Y, label(x, r))
			d.Group = append(d.Group, int64(g*7+1000))
		}
	}
	for j := range f {
		d.Names = append(d.Names, "feat"+string(rune('a'+j%26)))
	}
	return d
}

func uniform(r *rand.Rand) float64 { return 2*r.Float64() - 1 }
func normal(r *rand.Rand) float64  { return r.NormFloat64() }

// xorData: the label is the sign of x0·x1, flipped for 10% of rows; four
// more features are noise. No linear model can rank it.
func xorData(seed uint64) Dataset {
	return synth(seed, 80, 30, 6, uniform, func(x []float64, r *rand.Rand) float64 {
		y := 0.0
		if x[0]*x[1] > 0 {
			y = 1
		}
		if r.Float64() < 0.1 {
			y = 1 - y
		}
		return y
	})
}

// linearData: the label is Bernoulli(sigmoid(3x0 − 2.5x1 + 2x2)).
func linearData(seed uint64, groups, per int) Dataset {
	return synth(seed, groups, per, 6, normal, func(x []float64, r *rand.Rand) float64 {
		t := 3*x[0] - 2.5*x[1] + 2*x[2]
		if r.Float64() < 1/(1+math.Exp(-t)) {
			return 1
		}
		return 0
	})
}

func smallConfig(seed uint64) Config {
	return Config{
		Seed: seed, TestFraction: 0.2, ValidationFraction: 0.15,
		Hidden: []int{16, 8}, LearningRate: 0.01, L2: 1e-4,
		BatchSize: 64, MaxEpochs: 60, Patience: 10,
	}
}

func TestXORMLPBeatsLogistic(t *testing.T) {
	res, err := Train(xorData(1), smallConfig(7))
	if err != nil {
		t.Fatal(err)
	}
	lg, ml := res.Metrics["logistic"], res.Metrics["mlp"]
	t.Logf("test AUC logistic %.4f mlp %.4f; %s", lg.AUC, ml.AUC, res.Reason)
	if ml.AUC < lg.AUC+0.2 || ml.AUC < 0.8 {
		t.Errorf("mlp AUC %.4f does not clearly beat logistic's %.4f", ml.AUC, lg.AUC)
	}
	if res.Best != res.MLP {
		t.Errorf("picked %s: %s", res.Best.Kind, res.Reason)
	}
	if ml.LogLoss >= lg.LogLoss {
		t.Errorf("mlp log loss %.4f not below logistic's %.4f", ml.LogLoss, lg.LogLoss)
	}
}

func TestLinearLogisticGood(t *testing.T) {
	res, err := Train(linearData(2, 80, 30), smallConfig(3))
	if err != nil {
		t.Fatal(err)
	}
	lg, ml := res.Metrics["logistic"], res.Metrics["mlp"]
	t.Logf("test AUC logistic %.4f mlp %.4f; log loss %.4f %.4f; %s", lg.AUC, ml.AUC, lg.LogLoss, ml.LogLoss, res.Reason)
	if lg.AUC <= 0.9 {
		t.Errorf("logistic AUC %.4f ≤ 0.9 on a linear problem", lg.AUC)
	}
	if lg.AUC < ml.AUC-0.01 {
		t.Errorf("logistic AUC %.4f below mlp's %.4f beyond noise", lg.AUC, ml.AUC)
	}
	if h := res.History["logistic"]; !strings.HasPrefix(h.Stop, "converged") {
		t.Errorf("logistic stopped with %q after %d iterations", h.Stop, h.Epochs)
	}
}

func TestDeterminism(t *testing.T) {
	d := xorData(5)
	cfg := smallConfig(11)
	cfg.MaxEpochs = 8
	a, err := Train(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"logistic", "mlp"} {
		na, nb := a.Logistic, b.Logistic
		if kind == "mlp" {
			na, nb = a.MLP, b.MLP
		}
		if !bitsEqual(na.Mean, nb.Mean) || !bitsEqual(na.Std, nb.Std) {
			t.Errorf("%s: scalers differ", kind)
		}
		for k := range na.Layers {
			if !bitsEqual(na.Layers[k].W, nb.Layers[k].W) || !bitsEqual(na.Layers[k].B, nb.Layers[k].B) {
				t.Errorf("%s layer %d differs between two runs with the same seed", kind, k)
			}
		}
	}
	if !slices.Equal(a.History["mlp"].ValLoss, b.History["mlp"].ValLoss) {
		t.Errorf("validation curves differ")
	}
	// The same with one CPU: the shards and gonum's blocks reduce in an
	// order fixed by the shapes, not by the scheduler.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one, err := Train(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k := range a.MLP.Layers {
		if !bitsEqual(a.MLP.Layers[k].W, one.MLP.Layers[k].W) {
			t.Errorf("mlp layer %d differs with GOMAXPROCS=1", k)
		}
	}
	cfg.Seed = 12
	c, err := Train(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bitsEqual(a.MLP.Layers[0].W, c.MLP.Layers[0].W) {
		t.Errorf("a different seed gave the same MLP weights")
	}
}

func bitsEqual(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func TestSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d Dataset
	for g := range 200 {
		for range 1 + r.IntN(10) {
			d.Group = append(d.Group, int64(g*g-50))
		}
	}
	cfg := Config{Seed: 4, TestFraction: 0.2, ValidationFraction: 0.15}
	tr, va, te, err := Split(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(te.Groups) != 40 || len(va.Groups) != 30 || len(tr.Groups) != 130 {
		t.Errorf("groups train/val/test = %d/%d/%d, want 130/30/40", len(tr.Groups), len(va.Groups), len(te.Groups))
	}
	owner := map[int64]string{}
	for name, p := range map[string]Indices{"train": tr, "val": va, "test": te} {
		if !slices.IsSorted(p.Groups) || !slices.IsSorted(p.Rows) {
			t.Errorf("%s not sorted", name)
		}
		for _, g := range p.Groups {
			if o, ok := owner[g]; ok {
				t.Errorf("group %d in %s and %s", g, o, name)
			}
			owner[g] = name
		}
		for _, i := range p.Rows {
			if owner[d.Group[i]] != name {
				t.Errorf("row %d of group %d is in %s, its group in %s", i, d.Group[i], name, owner[d.Group[i]])
			}
		}
	}
	if n := len(tr.Rows) + len(va.Rows) + len(te.Rows); n != len(d.Group) {
		t.Errorf("%d rows placed of %d", n, len(d.Group))
	}
	tr2, va2, te2, _ := Split(d, cfg)
	if !slices.Equal(tr.Rows, tr2.Rows) || !slices.Equal(va.Groups, va2.Groups) || !slices.Equal(te.Groups, te2.Groups) {
		t.Errorf("split not deterministic")
	}
	cfg.Seed = 5
	_, _, te3, _ := Split(d, cfg)
	if slices.Equal(te.Groups, te3.Groups) {
		t.Errorf("another seed gave the same test groups")
	}
	// Three groups: one in each part.
	tr, va, te, err = Split(Dataset{Group: []int64{9, 9, 8, 7}}, Config{})
	if err != nil || len(tr.Groups) != 1 || len(va.Groups) != 1 || len(te.Groups) != 1 {
		t.Errorf("3 groups split %v %v %v, %v", tr.Groups, va.Groups, te.Groups, err)
	}
}

func TestScore(t *testing.T) {
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-15 {
			t.Errorf("%s = %.17g, want %.17g", name, got, want)
		}
	}
	p := []float64{0.9, 0.2, 0.6, 0.4}
	y := []float64{1, 0, 0, 1}
	m := Score(p, y)
	near("Brier", m.Brier, (0.01+0.04+0.36+0.36)/4)
	near("LogLoss", m.LogLoss, -(math.Log(0.9)+math.Log(0.8)+math.Log(0.4)+math.Log(0.4))/4)
	near("AUC", m.AUC, 0.75)
	near("Accuracy", m.Accuracy, 0.5)
	if m.N != 4 || m.Positives != 2 {
		t.Errorf("N %d Positives %d", m.N, m.Positives)
	}
	for k, want := range map[int]Bin{2: {Count: 1, MeanPredicted: 0.2, Observed: 0}, 4: {Count: 1, MeanPredicted: 0.4, Observed: 1}, 6: {Count: 1, MeanPredicted: 0.6}, 9: {Count: 1, MeanPredicted: 0.9, Observed: 1}} {
		b := m.Calibration[k]
		if b.Count != want.Count || b.MeanPredicted != want.MeanPredicted || b.Observed != want.Observed {
			t.Errorf("bin %d = %+v", k, b)
		}
	}
	if m.Calibration[0].Count != 0 || len(m.Calibration) != 10 || m.Calibration[9].Hi != 1 {
		t.Errorf("calibration %+v", m.Calibration)
	}

	near("perfect AUC", Score([]float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}).AUC, 1)
	near("reversed AUC", Score([]float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}).AUC, 0)
	near("all tied AUC", Score([]float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1}).AUC, 0.5)
	near("partly tied AUC", Score([]float64{0.5, 0.5, 0.1}, []float64{1, 0, 0}).AUC, 0.75)
	if a := Score([]float64{0.3, 0.4}, []float64{1, 1}).AUC; !math.IsNaN(a) {
		t.Errorf("AUC of one class = %v, want NaN", a)
	}
	// Clipping: certain and wrong costs −log(1e-7), not +Inf.
	c := Score([]float64{0, 1, 1}, []float64{1, 0, 1})
	hi := 1 - Clip // 1 is clipped to this, so a wrong 1 costs −log(1 − hi)
	near("clipped LogLoss", c.LogLoss, (-math.Log(Clip)-math.Log(1-hi)-math.Log(hi))/3)
	if c.Calibration[9].Count != 2 {
		t.Errorf("p = 1 not in the last bin: %+v", c.Calibration[9])
	}
}

func TestNetworksMatchForward(t *testing.T) {
	d := xorData(3)
	cfg := smallConfig(2)
	cfg.MaxEpochs = 5
	res, err := Train(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*nn.Network{res.Logistic, res.MLP, res.Best} {
		if err := n.Validate(); err != nil {
			t.Fatalf("%s: %v", n.Kind, err)
		}
		p, err := Predict(n, d.X, nil)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, x := range d.X {
			worst = max(worst, math.Abs(n.Forward(x)-p[i]))
		}
		if worst > 1e-12 {
			t.Errorf("%s: Forward and Predict differ by %g", n.Kind, worst)
		}
		// Evaluate on the test rows is what Train reported.
		m, err := Evaluate(n, d, res.Split.Test.Rows)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Metrics[n.Kind]; got.LogLoss != m.LogLoss || got.N != len(res.Split.Test.Rows) {
			t.Errorf("%s: metrics %v vs %v", n.Kind, got.LogLoss, m.LogLoss)
		}
	}
	if res.Best != res.Logistic && res.Best != res.MLP {
		t.Errorf("Best is neither model")
	}
	// The MLP kept its best epoch: its validation loss is the minimum.
	h := res.History["mlp"]
	if h.BestValLoss != slices.Min(h.ValLoss) || h.ValLoss[h.BestEpoch-1] != h.BestValLoss {
		t.Errorf("best epoch %d val %v of curve %v", h.BestEpoch, h.BestValLoss, h.ValLoss)
	}
	vp, _ := Predict(res.MLP, d.X, res.Split.Validation.Rows)
	vy := make([]float64, len(vp))
	for r, i := range res.Split.Validation.Rows {
		vy[r] = d.Y[i]
	}
	if got := logLoss(vp, vy); math.Abs(got-h.BestValLoss) > 1e-12 {
		t.Errorf("returned MLP has val log loss %v, history says %v", got, h.BestValLoss)
	}
}

func TestEarlyStopping(t *testing.T) {
	// Pure noise: the validation loss cannot keep improving.
	d := synth(8, 40, 20, 4, uniform, func(_ []float64, r *rand.Rand) float64 { return float64(r.IntN(2)) })
	cfg := smallConfig(1)
	cfg.MaxEpochs, cfg.Patience = 200, 3
	res, err := Train(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := res.History["mlp"]
	if h.Epochs >= 200 || h.Epochs != h.BestEpoch+3 || !strings.HasPrefix(h.Stop, "early stopping") {
		t.Errorf("epochs %d best %d stop %q", h.Epochs, h.BestEpoch, h.Stop)
	}
}

func TestErrors(t *testing.T) {
	good := func() Dataset { return linearData(1, 10, 5) }
	cases := []struct {
		name string
		d    func() Dataset
		cfg  Config
		want string
	}{
		{"empty", func() Dataset { return Dataset{} }, Config{}, "empty dataset"},
		{"ragged", func() Dataset { d := good(); d.X[7] = d.X[7][:3]; return d }, Config{}, "ragged X: row 7"},
		{"label", func() Dataset { d := good(); d.Y[4] = 1.5; return d }, Config{}, "label of row 4 is 1.5"},
		{"NaN label", func() Dataset { d := good(); d.Y[4] = math.NaN(); return d }, Config{}, "label of row 4 is NaN"},
		{"groups", func() Dataset {
			d := good()
			for i := range d.Group {
				d.Group[i] = int64(i % 2)
			}
			return d
		}, Config{}, "2 groups"},
		{"nan", func() Dataset { d := good(); d.X[13][2] = math.NaN(); return d }, Config{}, `feature "featc" (column 2) is NaN in row 13`},
		{"inf", func() Dataset { d := good(); d.X[2][0] = math.Inf(-1); return d }, Config{}, `feature "feata" (column 0) is -Inf in row 2`},
		{"one class", func() Dataset {
			d := good()
			for i := range d.Y {
				d.Y[i] = 1
			}
			return d
		}, Config{}, "has only label 1"},
		{"lengths", func() Dataset { d := good(); d.Y = d.Y[1:]; return d }, Config{}, "labels"},
		{"names", func() Dataset { d := good(); d.Names = d.Names[1:]; return d }, Config{}, "5 feature names for 6 features"},
		{"no features", func() Dataset { return Dataset{X: [][]float64{{}}, Y: []float64{0}, Group: []int64{1}} }, Config{}, "no features"},
		{"fractions", good, Config{TestFraction: 0.6, ValidationFraction: 0.5}, "no training groups"},
		{"fraction", good, Config{TestFraction: 1.5}, "TestFraction"},
		{"hidden", good, Config{Hidden: []int{4, 0}}, "hidden layer size 0"},
		{"negative", good, Config{BatchSize: -1}, "BatchSize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Train(c.d(), c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
			if res != nil {
				t.Errorf("a result with an error")
			}
		})
	}
	if _, err := Predict(&nn.Network{}, nil, nil); err == nil {
		t.Errorf("Predict of an invalid network did not fail")
	}
}

func TestSummaryAndProgress(t *testing.T) {
	cfg := smallConfig(4)
	cfg.MaxEpochs = 3
	var prog bytes.Buffer
	cfg.Progress = &prog
	res, err := Train(linearData(4, 20, 10), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.Summary(&out)
	s := out.String()
	t.Log("\n" + s)
	for _, want := range []string{"AUC", "log loss", "Brier", "accuracy", "epochs", "logistic", "mlp", "calibration on test", "0.9-1.0", "picked " + res.Best.Kind + ": its validation log loss"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	p := prog.String()
	if !strings.Contains(p, "mlp epoch   3/3 [###") || !strings.Contains(p, "logistic  Newton iteration") {
		t.Errorf("progress output:\n%s", p)
	}
}

// BenchmarkTrainMLP times MLP epochs (default architecture 32-16, batch
// 256) on 100k rows × 40 features.
func BenchmarkTrainMLP(b *testing.B) {
	const rows, f = 100_000, 40
	d := synth(1, 1000, rows/1000, f, normal, func(x []float64, r *rand.Rand) float64 {
		if x[0]*x[1]+x[2] > 0 {
			return 1
		}
		return 0
	})
	all := make([]int, rows)
	for i := range all {
		all[i] = i
	}
	mean, std := scaler(d.X, all)
	z := standardised(d.X, all, mean, std)
	val := standardised(d.X, all[:15000], mean, std)
	cfg := DefaultConfig()
	cfg.MaxEpochs, cfg.Patience = 2, 100
	b.ResetTimer()
	start := time.Now()
	epochs := 0
	for b.Loop() {
		_, h, err := fitMLP(z, d.Y, val, d.Y[:15000], mean, std, cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		epochs += h.Epochs
	}
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(epochs)/sec, "epochs/s")
	b.ReportMetric(float64(epochs*rows)/sec, "rows/s")
}

// BenchmarkTrainLogistic times the Newton fit on 100k rows × 40 features.
func BenchmarkTrainLogistic(b *testing.B) {
	const rows, f = 100_000, 40
	d := synth(1, 1000, rows/1000, f, normal, func(x []float64, r *rand.Rand) float64 {
		if r.Float64() < 1/(1+math.Exp(-(x[0]-x[1]+0.5*x[2]))) {
			return 1
		}
		return 0
	})
	all := make([]int, rows)
	for i := range all {
		all[i] = i
	}
	mean, std := scaler(d.X, all)
	z := standardised(d.X, all, mean, std)
	val := standardised(d.X, all[:15000], mean, std)
	cfg := DefaultConfig()
	for b.Loop() {
		if _, _, err := fitLogistic(z, d.Y, val, d.Y[:15000], mean, std, cfg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Weighting rows up moves the fit towards them: label noise only, so each
// model's mean prediction on the training rows follows the (weighted)
// share of positives.
func TestWeightRepeatsTrainingRows(t *testing.T) {
	// Labels independent of the features: 30% positive.
	d := synth(5, 60, 20, 3, normal, func(_ []float64, r *rand.Rand) float64 {
		if r.Float64() < 0.3 {
			return 1
		}
		return 0
	})
	mean := func(cfg Config) float64 {
		res, err := Train(d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, i := range res.Split.Train.Rows {
			sum += res.Logistic.Forward(d.X[i])
		}
		return sum / float64(len(res.Split.Train.Rows))
	}
	plain := mean(smallConfig(1))
	cfg := smallConfig(1)
	cfg.Weight = func(i int) int {
		if d.Y[i] == 1 {
			return 4 // positives count 4 times: 0.3·4 / (0.3·4 + 0.7) ≈ 0.63
		}
		return 1
	}
	weighted := mean(cfg)
	if plain > 0.4 || weighted < 0.5 {
		t.Errorf("mean prediction %.3f unweighted, %.3f with positives weighted 4×; want ≈0.3 and ≈0.63", plain, weighted)
	}
}
