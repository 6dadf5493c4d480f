// Package nn is the scoring network the trainer produces and the ONNX
// exporter writes: a standard scaler followed by dense layers. It is the
// one reference forward pass that the exported ONNX graph must match.
package nn

import (
	"fmt"
	"math"
)

// Activation is what a layer applies to its affine output.
type Activation string

const (
	Identity Activation = "identity"
	ReLU     Activation = "relu"
	Sigmoid  Activation = "sigmoid"
)

// Layer is y = act(W x + b), W stored row-major as Out rows of In columns.
type Layer struct {
	In, Out    int
	W          []float64 // len Out*In, W[o*In+i]
	B          []float64 // len Out
	Activation Activation
}

// Network scores one feature vector: standardise with Mean and Std, then the
// layers in order. The last layer has one output and a Sigmoid, so the
// score is a probability.
type Network struct {
	// Kind names the architecture: "logistic" or "mlp".
	Kind string
	// Mean and Std standardise each input feature: (x - Mean) / Std. Std
	// is never zero (a constant feature gets 1).
	Mean, Std []float64
	Layers    []Layer
}

// Inputs returns the number of features the network takes.
func (n *Network) Inputs() int { return len(n.Mean) }

// Validate reports a network whose shapes do not chain, whose last layer is
// not one sigmoid output, or that holds a number that is not finite.
func (n *Network) Validate() error {
	if len(n.Mean) == 0 || len(n.Std) != len(n.Mean) {
		return fmt.Errorf("nn: scaler has %d means and %d deviations", len(n.Mean), len(n.Std))
	}
	for i, s := range n.Std {
		if !(s > 0) || math.IsInf(s, 0) || math.IsNaN(n.Mean[i]) || math.IsInf(n.Mean[i], 0) {
			return fmt.Errorf("nn: feature %d has mean %v and deviation %v", i, n.Mean[i], s)
		}
	}
	if len(n.Layers) == 0 {
		return fmt.Errorf("nn: no layers")
	}
	in := len(n.Mean)
	for k, l := range n.Layers {
		if l.In != in || l.Out <= 0 || len(l.W) != l.In*l.Out || len(l.B) != l.Out {
			return fmt.Errorf("nn: layer %d is %dx%d with %d weights and %d biases, after %d inputs", k, l.Out, l.In, len(l.W), len(l.B), in)
		}
		switch l.Activation {
		case Identity, ReLU, Sigmoid:
		default:
			return fmt.Errorf("nn: layer %d has activation %q", k, l.Activation)
		}
		for _, v := range append(append([]float64(nil), l.W...), l.B...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("nn: layer %d holds %v", k, v)
			}
		}
		in = l.Out
	}
	last := n.Layers[len(n.Layers)-1]
	if last.Out != 1 || last.Activation != Sigmoid {
		return fmt.Errorf("nn: the last layer must have one sigmoid output, has %d %s", last.Out, last.Activation)
	}
	return nil
}

// Forward scores x (len Inputs()).
func (n *Network) Forward(x []float64) float64 {
	h := make([]float64, len(x))
	for i, v := range x {
		h[i] = (v - n.Mean[i]) / n.Std[i]
	}
	for _, l := range n.Layers {
		out := make([]float64, l.Out)
		for o := range l.Out {
			s := l.B[o]
			row := l.W[o*l.In : (o+1)*l.In]
			for i, v := range h {
				s += row[i] * v
			}
			switch l.Activation {
			case ReLU:
				s = math.Max(s, 0)
			case Sigmoid:
				s = 1 / (1 + math.Exp(-s))
			}
			out[o] = s
		}
		h = out
	}
	return h[0]
}
