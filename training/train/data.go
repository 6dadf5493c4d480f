// Package train fits the scoring network of package nn from labelled
// candidate resolutions: a logistic-regression baseline and a small MLP, both
// behind a standard scaler fitted on the training split, and picks the one
// with the lower validation log loss.
//
// Each row of a Dataset is one candidate resolution of one conflict in one
// composition; the label is 1 when the composed environment was healthy with
// that resolution. Rows carry the composition as a group id, and every split
// is made by group, so no composition is seen in two of train, validation
// and test.
//
// Everything is deterministic for a Config.Seed: the same data and Config
// give bit-identical networks on the same platform, whatever GOMAXPROCS is.
// The MLP cuts each minibatch into a fixed number of shards worked on
// concurrently and adds their gradients in shard order; gonum's matrix
// products may run blocks concurrently, but reduce each output element in
// an order fixed by the shapes alone.
package train

import (
	"fmt"
	"math"
	"slices"
)

// Dataset is the training table.
type Dataset struct {
	X     [][]float64 // rows × F features
	Y     []float64   // label per row: 0 or 1
	Group []int64     // composition id per row
	Names []string    // feature names, len F; nil names them f0, f1, …
}

// Features returns the number of columns of the first row (0 when empty).
func (d Dataset) Features() int {
	if len(d.X) == 0 {
		return 0
	}
	return len(d.X[0])
}

// check reports the first problem that makes d untrainable and returns the
// feature names to use.
func (d Dataset) check() ([]string, error) {
	n := len(d.X)
	if n == 0 {
		return nil, fmt.Errorf("train: empty dataset")
	}
	if len(d.Y) != n || len(d.Group) != n {
		return nil, fmt.Errorf("train: %d rows of X, %d labels and %d group ids", n, len(d.Y), len(d.Group))
	}
	f := len(d.X[0])
	if f == 0 {
		return nil, fmt.Errorf("train: rows have no features")
	}
	names := d.Names
	if names == nil {
		names = make([]string, f)
		for j := range names {
			names[j] = fmt.Sprintf("f%d", j)
		}
	} else if len(names) != f {
		return nil, fmt.Errorf("train: %d feature names for %d features", len(names), f)
	}
	for i, row := range d.X {
		if len(row) != f {
			return nil, fmt.Errorf("train: ragged X: row %d has %d features, row 0 has %d", i, len(row), f)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("train: feature %q (column %d) is %v in row %d", names[j], j, v, i)
			}
		}
	}
	for i, y := range d.Y {
		if !(y >= 0 && y <= 1) {
			return nil, fmt.Errorf("train: label of row %d is %v, not in [0, 1] (0 or 1, or a soft label in between)", i, y)
		}
	}
	return names, nil
}

// Indices is one part of a split: the groups in it and their rows.
type Indices struct {
	Groups []int64 // ascending
	Rows   []int   // ascending row indices into the Dataset
}

// Splits records where every group and row went.
type Splits struct {
	Train, Validation, Test Indices
}

// Split assigns whole groups to train, validation and test: the distinct
// group ids, sorted, are shuffled with a generator seeded by cfg.Seed; the
// first round(TestFraction·G) go to test, the next round(ValidationFraction·G)
// to validation, the rest to train, each part getting at least one group.
// The fractions are of groups, not rows. Zero fractions take the defaults
// of DefaultConfig. It needs at least 3 groups.
func Split(d Dataset, cfg Config) (train, val, test Indices, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return train, val, test, err
	}
	if len(d.Group) == 0 {
		return train, val, test, fmt.Errorf("train: empty dataset")
	}
	groups := slices.Clone(d.Group)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	g := len(groups)
	if g < 3 {
		return train, val, test, fmt.Errorf("train: %d groups; a split by group needs at least 3", g)
	}
	newRNG(cfg.Seed, streamSplit).shuffleInt64(groups)

	nTest := max(1, int(math.Round(cfg.TestFraction*float64(g))))
	nVal := max(1, int(math.Round(cfg.ValidationFraction*float64(g))))
	for nTest+nVal > g-1 { // leave train at least one group
		if nTest >= nVal {
			nTest--
		} else {
			nVal--
		}
	}
	where := make(map[int64]int, g) // 0 train, 1 val, 2 test
	for i, id := range groups {
		switch {
		case i < nTest:
			where[id] = 2
		case i < nTest+nVal:
			where[id] = 1
		default:
			where[id] = 0
		}
	}
	parts := [3]*Indices{&train, &val, &test}
	for id, p := range where {
		parts[p].Groups = append(parts[p].Groups, id)
	}
	for i, id := range d.Group {
		p := parts[where[id]]
		p.Rows = append(p.Rows, i)
	}
	for _, p := range parts {
		slices.Sort(p.Groups)
	}
	return train, val, test, nil
}
