package train

import (
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/snapcompose/snapcompose/training/nn"
)

// Adam's constants (Kingma & Ba's defaults).
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// mlp is the network being trained and the optimiser's state. The weights
// live in layers (the nn layout, W row-major Out×In); w wraps them as gonum
// matrices without copying.
type mlp struct {
	layers []nn.Layer
	w      []*mat.Dense
	gW     []*mat.Dense // minibatch gradient of W (the shards' parts added), Out×In
	gB     [][]float64
	mW, vW [][]float64 // Adam moments of W
	mB, vB [][]float64 // Adam moments of B
	step   int
	lr, l2 float64
}

// newMLP builds F → hidden… → 1 with ReLU hidden layers and a sigmoid
// output. Hidden weights get He initialisation, N(0, 2/In), suited to ReLU;
// the output layer gets N(0, 1/In) (LeCun), suited to a sigmoid; biases 0.
// All draws come from one stream seeded by seed, layer by layer, row-major.
func newMLP(f int, hidden []int, seed uint64, lr, l2 float64) *mlp {
	r := newRNG(seed, streamInit)
	m := &mlp{lr: lr, l2: l2}
	in := f
	sizes := append(append([]int(nil), hidden...), 1)
	for k, out := range sizes {
		act, scale := nn.ReLU, math.Sqrt(2/float64(in))
		if k == len(sizes)-1 {
			act, scale = nn.Sigmoid, math.Sqrt(1/float64(in))
		}
		l := nn.Layer{In: in, Out: out, W: make([]float64, in*out), B: make([]float64, out), Activation: act}
		for i := range l.W {
			l.W[i] = scale * r.norm()
		}
		m.layers = append(m.layers, l)
		m.w = append(m.w, mat.NewDense(out, in, l.W))
		m.gW = append(m.gW, mat.NewDense(out, in, nil))
		m.gB = append(m.gB, make([]float64, out))
		m.mW = append(m.mW, make([]float64, in*out))
		m.vW = append(m.vW, make([]float64, in*out))
		m.mB = append(m.mB, make([]float64, out))
		m.vB = append(m.vB, make([]float64, out))
		in = out
	}
	return m
}

// network returns the current weights as an nn.Network sharing m's slices.
func (m *mlp) network(mean, std []float64) *nn.Network {
	return &nn.Network{Kind: "mlp", Mean: mean, Std: std, Layers: m.layers}
}

// snapshot deep-copies the current weights.
func (m *mlp) snapshot() []nn.Layer {
	out := make([]nn.Layer, len(m.layers))
	for k, l := range m.layers {
		l.W = append([]float64(nil), l.W...)
		l.B = append([]float64(nil), l.B...)
		out[k] = l
	}
	return out
}

// shards is how many parts each minibatch is cut into, each worked on by
// its own goroutine with its own gradient buffers; the parts' gradients are
// then added in shard order. The number is fixed, not taken from the CPU
// count, so the sums, and so the weights, are the same on every machine.
const shards = 2

// batch is the workspace of one shard for one number of rows: its inputs,
// labels, and each layer's activations and deltas (rows×Out).
type batch struct {
	x    *mat.Dense
	y    []float64
	a, d []*mat.Dense
}

// shard owns the memory that its batch views of every size share, and its
// part of the gradient.
type shard struct {
	x, y  []float64
	a, d  [][]float64
	f     int
	outs  []int
	views map[int]*batch
	gW    []*mat.Dense
	gB    [][]float64
	loss  float64
}

func newShard(size, f int, layers []nn.Layer) *shard {
	sh := &shard{x: make([]float64, size*f), y: make([]float64, size), f: f, views: map[int]*batch{}}
	for _, l := range layers {
		sh.a = append(sh.a, make([]float64, size*l.Out))
		sh.d = append(sh.d, make([]float64, size*l.Out))
		sh.outs = append(sh.outs, l.Out)
		sh.gW = append(sh.gW, mat.NewDense(l.Out, l.In, nil))
		sh.gB = append(sh.gB, make([]float64, l.Out))
	}
	return sh
}

// view returns the workspace for b rows (0 < b ≤ size).
func (sh *shard) view(b int) *batch {
	if w, ok := sh.views[b]; ok {
		return w
	}
	w := &batch{x: mat.NewDense(b, sh.f, sh.x[:b*sh.f]), y: sh.y[:b]}
	for k, out := range sh.outs {
		w.a = append(w.a, mat.NewDense(b, out, sh.a[k][:b*out]))
		w.d = append(w.d, mat.NewDense(b, out, sh.d[k][:b*out]))
	}
	sh.views[b] = w
	return w
}

// gradient gathers the given rows of z, runs forward and backward, and
// leaves in sh.gW, sh.gB the gradient of (sum of the rows' log loss)/total,
// and in sh.loss the sum of their clipped log loss. It only reads m.
func (m *mlp) gradient(sh *shard, z *mat.Dense, y []float64, rows []int, total int) {
	w := sh.view(len(rows))
	for r, i := range rows {
		copy(w.x.RawRowView(r), z.RawRowView(i))
		w.y[r] = y[i]
	}
	last := len(m.layers) - 1
	h := w.x
	for k, l := range m.layers {
		w.a[k].Mul(h, m.w[k].T())
		activate(w.a[k], l)
		h = w.a[k]
	}
	var loss float64
	out, dOut := w.a[last].RawMatrix().Data, w.d[last].RawMatrix().Data
	for r, yr := range w.y {
		p := out[r]
		loss += pointLoss(p, yr)
		dOut[r] = (p - yr) / float64(total) // d(mean log loss)/d(logit)
	}
	sh.loss = loss
	for k := last; k >= 0; k-- {
		prev := w.x
		if k > 0 {
			prev = w.a[k-1]
		}
		sh.gW[k].Mul(w.d[k].T(), prev)
		gb := sh.gB[k]
		clear(gb)
		for r := range len(rows) {
			for o, v := range w.d[k].RawRowView(r) {
				gb[o] += v
			}
		}
		if k > 0 {
			w.d[k-1].Mul(w.d[k], m.w[k])
			dd, aa := w.d[k-1].RawMatrix().Data, w.a[k-1].RawMatrix().Data
			for i, a := range aa {
				if a <= 0 { // ReLU'
					dd[i] = 0
				}
			}
		}
	}
}

// train computes the minibatch gradient over the given rows, its shards
// in parallel, adds the shards' parts in order, takes one Adam step, and
// returns the sum of the rows' clipped log loss.
func (m *mlp) train(sh []*shard, z *mat.Dense, y []float64, rows []int) float64 {
	per := (len(rows) + len(sh) - 1) / len(sh)
	var wg sync.WaitGroup
	used := 0
	for k := range sh {
		lo, hi := min(k*per, len(rows)), min((k+1)*per, len(rows))
		if lo == hi {
			break
		}
		used++
		wg.Go(func() { m.gradient(sh[k], z, y, rows[lo:hi], len(rows)) })
	}
	wg.Wait()
	var loss float64
	for k := range m.layers {
		gw, gb := m.gW[k].RawMatrix().Data, m.gB[k]
		copy(gw, sh[0].gW[k].RawMatrix().Data)
		copy(gb, sh[0].gB[k])
		for _, s := range sh[1:used] {
			for i, v := range s.gW[k].RawMatrix().Data {
				gw[i] += v
			}
			for i, v := range s.gB[k] {
				gb[i] += v
			}
		}
	}
	for _, s := range sh[:used] {
		loss += s.loss
	}
	m.adam()
	return loss
}

// adam applies one Adam step with the L2 term added to the weight
// gradients (coupled L2, not decoupled weight decay; biases unpenalised).
func (m *mlp) adam() {
	m.step++
	t := float64(m.step)
	c1 := 1 - math.Pow(adamBeta1, t)
	c2 := 1 - math.Pow(adamBeta2, t)
	upd := func(p, g, mm, vv []float64, l2 float64) {
		for i := range p {
			gi := g[i] + l2*p[i]
			mm[i] = adamBeta1*mm[i] + (1-adamBeta1)*gi
			vv[i] = adamBeta2*vv[i] + (1-adamBeta2)*gi*gi
			p[i] -= m.lr * (mm[i] / c1) / (math.Sqrt(vv[i]/c2) + adamEps)
		}
	}
	for k, l := range m.layers {
		upd(l.W, m.gW[k].RawMatrix().Data, m.mW[k], m.vW[k], m.l2)
		upd(l.B, m.gB[k], m.mB[k], m.vB[k], 0)
	}
}

// fitMLP trains the MLP by minibatch Adam on standardised rows z (labels
// y), shuffling the rows every epoch with the seeded generator. After each
// epoch it computes the validation log loss; it keeps the weights of the
// best epoch and stops when Patience epochs in a row have not improved on
// it, or after MaxEpochs.
func fitMLP(z *mat.Dense, y []float64, zVal *mat.Dense, yVal []float64, mean, std []float64, cfg Config, bar *progress) (*nn.Network, History, error) {
	n, f := z.Dims()
	m := newMLP(f, cfg.Hidden, cfg.Seed, cfg.LearningRate, cfg.L2)
	size := min(cfg.BatchSize, n)
	sh := make([]*shard, shards)
	for k := range sh {
		sh[k] = newShard((size+shards-1)/shards, f, m.layers)
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	shuffle := newRNG(cfg.Seed, streamShuffle)

	h := History{BestValLoss: math.Inf(1)}
	var best []nn.Layer
	since := 0
	h.Stop = fmt.Sprintf("reached MaxEpochs (%d)", cfg.MaxEpochs)
	nBatches := (n + size - 1) / size
	for epoch := 1; epoch <= cfg.MaxEpochs; epoch++ {
		shuffle.shuffle(perm)
		var loss float64
		for s, bi := 0, 0; s < n; s, bi = s+size, bi+1 {
			e := min(s+size, n)
			loss += m.train(sh, z, y, perm[s:e])
			bar.set(fmt.Sprintf("mlp epoch %3d/%d", epoch, cfg.MaxEpochs), bi+1, nBatches,
				fmt.Sprintf("train %.5f  best val %s", loss/float64(e), fmtLoss(h.BestValLoss)))
		}
		loss /= float64(n)
		if math.IsNaN(loss) || !finite(m.layers) {
			bar.done()
			return nil, h, fmt.Errorf("train: mlp diverged in epoch %d (weights not finite); lower LearningRate", epoch)
		}
		vl := logLoss(predictZ(m.network(mean, std), zVal), yVal)
		h.Epochs = epoch
		h.TrainLoss = append(h.TrainLoss, loss)
		h.ValLoss = append(h.ValLoss, vl)
		bar.set(fmt.Sprintf("mlp epoch %3d/%d", epoch, cfg.MaxEpochs), nBatches, nBatches,
			fmt.Sprintf("train %.5f  val %.5f  best val %.5f", loss, vl, min(vl, h.BestValLoss)))
		bar.done()
		if vl < h.BestValLoss {
			h.BestValLoss, h.BestEpoch, since = vl, epoch, 0
			best = m.snapshot()
		} else if since++; since >= cfg.Patience {
			h.Stop = fmt.Sprintf("early stopping: no better validation log loss in %d epochs", cfg.Patience)
			break
		}
	}
	bar.done()
	net := &nn.Network{Kind: "mlp", Mean: mean, Std: std, Layers: best}
	if err := net.Validate(); err != nil {
		return nil, h, fmt.Errorf("train: mlp: %w", err)
	}
	return net, h, nil
}

func finite(layers []nn.Layer) bool {
	for _, l := range layers {
		for _, s := range [][]float64{l.W, l.B} {
			for _, v := range s {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return false
				}
			}
		}
	}
	return true
}

// fmtLoss prints a loss, or "-" before there is one.
func fmtLoss(v float64) string {
	if math.IsInf(v, 1) {
		return "-"
	}
	return fmt.Sprintf("%.5f", v)
}
