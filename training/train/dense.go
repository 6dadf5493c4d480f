package train

import (
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/snapcompose/snapcompose/training/nn"
)

// scaler fits Mean and Std on the given rows: population standard
// deviation; a feature constant on those rows gets Std 1.
func scaler(X [][]float64, rows []int) (mean, std []float64) {
	f := len(X[rows[0]])
	mean = make([]float64, f)
	std = make([]float64, f)
	n := float64(len(rows))
	for j := range f {
		var s float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, i := range rows {
			v := X[i][j]
			s += v
			lo, hi = min(lo, v), max(hi, v)
		}
		m := s / n
		var ss float64
		for _, i := range rows {
			d := X[i][j] - m
			ss += d * d
		}
		sd := math.Sqrt(ss / n)
		if lo == hi || !(sd > 0) || math.IsInf(sd, 0) {
			sd = 1
		}
		mean[j], std[j] = m, sd
	}
	return mean, std
}

// standardise writes (x - mean) / std into dst, exactly as nn.Forward does.
func standardise(dst, x, mean, std []float64) {
	for j, v := range x {
		dst[j] = (v - mean[j]) / std[j]
	}
}

// standardised gathers the rows of X into a dense matrix, standardised.
func standardised(X [][]float64, rows []int, mean, std []float64) *mat.Dense {
	z := mat.NewDense(len(rows), len(mean), nil)
	for r, i := range rows {
		standardise(z.RawRowView(r), X[i], mean, std)
	}
	return z
}

// evalChunk is how many rows predictZ pushes through at once.
const evalChunk = 2048

// predictZ is the network's forward pass on already standardised rows
// (at least one).
func predictZ(n *nn.Network, z *mat.Dense) []float64 {
	rows, _ := z.Dims()
	out := make([]float64, rows)
	chunk := min(evalChunk, rows)
	bufs := make([][]float64, len(n.Layers))
	ws := make([]*mat.Dense, len(n.Layers))
	for k, l := range n.Layers {
		bufs[k] = make([]float64, chunk*l.Out)
		ws[k] = mat.NewDense(l.Out, l.In, l.W)
	}
	for lo := 0; lo < rows; lo += chunk {
		hi := min(lo+chunk, rows)
		b := hi - lo
		h := z.Slice(lo, hi, 0, n.Inputs()).(*mat.Dense)
		for k, l := range n.Layers {
			a := mat.NewDense(b, l.Out, bufs[k][:b*l.Out])
			a.Mul(h, ws[k].T())
			activate(a, l)
			h = a
		}
		for r := range b {
			out[lo+r] = h.At(r, 0)
		}
	}
	return out
}

// activate adds the bias to each row of a and applies the activation.
func activate(a *mat.Dense, l nn.Layer) {
	rows, _ := a.Dims()
	for r := range rows {
		row := a.RawRowView(r)
		for o, s := range row {
			s += l.B[o]
			switch l.Activation {
			case nn.ReLU:
				if s < 0 { // math.Max(s, 0) but for the sign of a zero
					s = 0
				}
			case nn.Sigmoid:
				s = 1 / (1 + math.Exp(-s))
			}
			row[o] = s
		}
	}
}
