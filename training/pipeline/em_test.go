package pipeline_test

import (
	"math"
	"testing"

	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/train"
)

func TestOutcomeLogLoss(t *testing.T) {
	half := &nn.Network{Kind: "logistic", Mean: []float64{0}, Std: []float64{1},
		Layers: []nn.Layer{{In: 1, Out: 1, W: []float64{0}, B: []float64{0}, Activation: nn.Sigmoid}}}
	d := &pipeline.Data{
		Dataset: train.Dataset{X: [][]float64{{1}, {2}, {3}}, Y: []float64{1, 1, 0}, Group: []int64{0, 0, 1}},
		Failed:  map[int64]bool{1: true},
	}
	// Group 0 is healthy with P = 0.5·0.5; group 1 failed with P = 0.5.
	want := (-math.Log(0.25) - math.Log(0.5)) / 2
	if got := pipeline.OutcomeLogLoss(half, d, []int{0, 1, 2}); math.Abs(got-want) > 1e-12 {
		t.Errorf("OutcomeLogLoss = %v, want %v", got, want)
	}
	if got := pipeline.OutcomeLogLoss(half, d, nil); !math.IsNaN(got) {
		t.Errorf("no rows: %v, want NaN", got)
	}
}
