package train

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/snapcompose/snapcompose/training/nn"
)

// Newton's stopping rules for the logistic baseline.
const (
	logisticMaxIterations = 100
	logisticGradTol       = 1e-9  // max |gradient| of the mean objective
	logisticRelTol        = 1e-13 // relative objective decrease
)

// fitLogistic fits the logistic-regression baseline on standardised
// training rows z (labels y), minimising
//
//	f(w, b) = (1/n) Σ [softplus(xᵢ·w + b) − yᵢ(xᵢ·w + b)] + (L2/2)‖w‖²
//
// (the bias is not penalised) by damped Newton's method, i.e. iteratively
// reweighted least squares: the analytic gradient Xᵀ(p−y)/n + L2·w and
// Hessian Xᵀdiag(p(1−p))X/n + L2·I are formed with gonum/mat, the step
// solved by Cholesky, and a backtracking (Armijo) line search keeps every
// step a decrease. The problem is convex and smooth with at most a few dozen
// parameters, so full-batch second-order steps reach the regularised
// optimum to machine precision in about ten iterations with no learning
// rate or epoch budget to tune, and deterministically; the baseline is then
// the best linear model the features allow, not an artefact of its
// optimiser. (gonum/optimize's LBFGS would do as well, but that package
// pulls golang.org/x/tools into the build, which this module does not
// carry.) No early stopping: the L2 term is the regulariser; the validation
// log loss of each iterate is recorded in the History.
func fitLogistic(z *mat.Dense, y []float64, zVal *mat.Dense, yVal []float64, mean, std []float64, cfg Config, bar *progress) (*nn.Network, History, error) {
	n, f := z.Dims()
	nf := float64(n)
	w := make([]float64, f) // weights; b is the bias
	var b float64
	logits := mat.NewVecDense(n, nil)

	// objective returns f at (w, b) and leaves the logits in logits.
	objective := func(w []float64, b float64) float64 {
		logits.MulVec(z, mat.NewVecDense(f, w))
		var loss float64
		for i := range n {
			t := logits.AtVec(i) + b
			loss += math.Max(t, 0) + math.Log1p(math.Exp(-math.Abs(t))) - y[i]*t
		}
		var reg float64
		for _, v := range w {
			reg += v * v
		}
		return loss/nf + cfg.L2/2*reg
	}
	network := func() *nn.Network {
		return &nn.Network{
			Kind: "logistic", Mean: mean, Std: std,
			Layers: []nn.Layer{{In: f, Out: 1, W: append([]float64(nil), w...), B: []float64{b}, Activation: nn.Sigmoid}},
		}
	}

	resid := mat.NewVecDense(n, nil)    // (p − y)/n
	weighted := mat.NewDense(n, f, nil) // √(p(1−p)) · x, row by row
	sw := mat.NewVecDense(n, nil)       // p(1−p)
	gw := mat.NewVecDense(f, nil)
	hww := mat.NewDense(f, f, nil)
	hwb := mat.NewVecDense(f, nil)
	grad := make([]float64, f+1)
	hess := mat.NewSymDense(f+1, nil)
	step := mat.NewVecDense(f+1, nil)
	tw := make([]float64, f)

	var h History
	fx := objective(w, b)
	h.Stop = fmt.Sprintf("reached %d Newton iterations", logisticMaxIterations)
	for it := 1; it <= logisticMaxIterations; it++ {
		// Gradient and Hessian at (w, b); logits hold Zw from objective.
		var gb, hbb float64
		for i := range n {
			p := 1 / (1 + math.Exp(-(logits.AtVec(i) + b)))
			resid.SetVec(i, (p-y[i])/nf)
			gb += (p - y[i]) / nf
			s := p * (1 - p)
			sw.SetVec(i, s/nf)
			hbb += s / nf
			rs := math.Sqrt(s / nf)
			dst, src := weighted.RawRowView(i), z.RawRowView(i)
			for j, v := range src {
				dst[j] = rs * v
			}
		}
		gw.MulVec(z.T(), resid)
		hww.Mul(weighted.T(), weighted) // Σ sᵢ xᵢxᵢᵀ / n (Dgemm beats Dsyrk here)
		hwb.MulVec(z.T(), sw)
		gmax := math.Abs(gb)
		for j := range f {
			grad[j] = gw.AtVec(j) + cfg.L2*w[j]
			gmax = max(gmax, math.Abs(grad[j]))
		}
		grad[f] = gb
		if gmax < logisticGradTol {
			h.Stop = "converged (gradient)"
			break
		}
		for i := range f {
			for j := i; j < f; j++ {
				v := hww.At(i, j)
				if i == j {
					v += cfg.L2
				}
				hess.SetSym(i, j, v)
			}
			hess.SetSym(i, f, hwb.AtVec(i))
		}
		hess.SetSym(f, f, hbb)
		if err := newtonStep(step, hess, grad); err != nil {
			return nil, h, fmt.Errorf("train: logistic regression, iteration %d: %w", it, err)
		}
		// Backtracking line search along −step.
		var slope float64
		for j, g := range grad {
			slope += g * step.AtVec(j)
		}
		t, accepted := 1.0, false
		var ft, tb float64
		for range 50 {
			for j := range f {
				tw[j] = w[j] - t*step.AtVec(j)
			}
			tb = b - t*step.AtVec(f)
			ft = objective(tw, tb)
			if ft <= fx-1e-4*t*slope {
				accepted = true
				break
			}
			t /= 2
		}
		if !accepted {
			objective(w, b) // restore the logits of the kept point
			h.Stop = "converged (no further decrease along the Newton step)"
			break
		}
		copy(w, tw)
		b = tb
		prev := fx
		fx = ft
		h.Epochs = it
		vl := logLoss(predictZ(network(), zVal), yVal)
		h.TrainLoss = append(h.TrainLoss, fx)
		h.ValLoss = append(h.ValLoss, vl)
		bar.line(fmt.Sprintf("logistic  Newton iteration %3d  objective %.6f  val log loss %.5f", it, fx, vl))
		if prev-fx <= logisticRelTol*(1+math.Abs(fx)) {
			h.Stop = "converged (objective)"
			break
		}
	}
	bar.done()
	if math.IsNaN(fx) || math.IsInf(fx, 0) {
		return nil, h, fmt.Errorf("train: logistic regression ended with objective %v", fx)
	}
	net := network()
	if err := net.Validate(); err != nil {
		return nil, h, fmt.Errorf("train: logistic regression: %w", err)
	}
	h.BestEpoch = h.Epochs
	h.BestValLoss = logLoss(predictZ(net, zVal), yVal)
	return net, h, nil
}

// newtonStep solves hess·step = grad by Cholesky. When the Hessian is not
// numerically positive definite (no L2 and a separable or degenerate
// problem) it adds a growing ridge to the diagonal.
func newtonStep(step *mat.VecDense, hess *mat.SymDense, grad []float64) error {
	g := mat.NewVecDense(len(grad), grad)
	var chol mat.Cholesky
	if chol.Factorize(hess) {
		if err := chol.SolveVecTo(step, g); err == nil {
			return nil
		}
	}
	k := len(grad)
	var tr float64
	for i := range k {
		tr += hess.At(i, i)
	}
	ridge := max(tr/float64(k), 1) * 1e-10
	damped := mat.NewSymDense(k, nil)
	for range 20 {
		damped.CopySym(hess)
		for i := range k {
			damped.SetSym(i, i, hess.At(i, i)+ridge)
		}
		if chol.Factorize(damped) {
			if err := chol.SolveVecTo(step, g); err == nil {
				return nil
			}
		}
		ridge *= 100
	}
	return fmt.Errorf("the Hessian is not positive definite even with a ridge of %g", ridge)
}
