package pipeline_test

import (
	"math"
	"testing"

	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/train"
)

// half is a network that scores every row 0.5.
func half() *nn.Network {
	return &nn.Network{Kind: "logistic", Mean: []float64{0}, Std: []float64{1},
		Layers: []nn.Layer{{In: 1, Out: 1, W: []float64{0}, B: []float64{0}, Activation: nn.Sigmoid}}}
}

func TestOutcomeLogLoss(t *testing.T) {
	half := half()
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

// TestExactStep checks the E-step's posterior on a composition small
// enough to work by hand. Decisions a and b touch service 0, which is
// broken; c touches service 1, which is healthy (so c was fine); d touches
// nothing. The network scores every decision 0.5 (a constant). The verdict
// is failed.
//
// Failure sets that explain service 0 broken and service 1 healthy:
// {a}, {b}, {a,b}, each with or without d — prior 0.5^4 each (c is not a
// suspect, so it does not enter), all with a non-empty set, so the verdict
// weight 0.98 is common. a is fine in {b}, {b,d}: 2 of the 6 sets; d is
// fine in 3 of 6.
func TestExactStep(t *testing.T) {
	d := &pipeline.Data{
		Dataset: train.Dataset{X: [][]float64{{0}, {0}, {0}, {0}}, Y: []float64{0, 0, 1, 0}, Group: []int64{0, 0, 0, 0}},
		Failed:  map[int64]bool{0: true},
		Health:  map[int64][]bool{0: {false, true}},
		Touched: [][]int{{0}, {0}, {1}, nil},
	}
	y := append([]float64(nil), d.Y...)
	pipeline.EStep(half(), d, y, map[int64][]int{0: {0, 1, 2, 3}})
	want := []float64{2.0 / 6, 2.0 / 6, 1, 3.0 / 6}
	for i := range want {
		if math.Abs(y[i]-want[i]) > 1e-12 {
			t.Errorf("decision %d: P(fine) = %v, want %v", i, y[i], want[i])
		}
	}
	// A healthy verdict with a broken service (a flipped report): the same
	// sets explain the services, each now at weight 0.02; the empty set
	// cannot (service 0 is broken), so the posterior is unchanged.
	d.Failed[0] = false
	y = append([]float64(nil), d.Y...)
	pipeline.EStep(half(), d, y, map[int64][]int{0: {0, 1, 2, 3}})
	for i := range want {
		if math.Abs(y[i]-want[i]) > 1e-12 {
			t.Errorf("flipped verdict, decision %d: P(fine) = %v, want %v", i, y[i], want[i])
		}
	}
}
