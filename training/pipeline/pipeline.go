// Package pipeline runs the offline learning pipeline end to end: simulate
// history into Postgres (while no real history exists), read the training
// rows back from Postgres, train, and judge the models' decisions on
// held-out compositions against the simulator's ground truth.
package pipeline

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/simulate"
	"github.com/snapcompose/snapcompose/training/train"
)

// Simulate writes compositions 0..n-1 of sim into the store, settling them
// in order (each sees the history its predecessors left) and recording them
// with workers concurrent writers. progress, if not nil, gets a line every
// tenth of the way.
func Simulate(ctx context.Context, st *store.Store, sim *simulate.Simulator, n, workers int, progress io.Writer) error {
	if workers < 1 {
		workers = 1
	}
	runs := make(chan *simulate.Run, workers*4)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range runs {
				if _, err := simulate.Record(ctx, st, run); err != nil {
					errs <- fmt.Errorf("recording %s: %w", run.World.Manifest.Name, err)
					cancel()
					for range runs {
					}
					return
				}
			}
		}()
	}
	done := 0
	genErr := sim.Generate(n, func(run *simulate.Run, _ simulate.History) error {
		select {
		case runs <- run:
		case <-ctx.Done():
			return ctx.Err()
		}
		done++
		if progress != nil && n >= 10 && done%(n/10) == 0 {
			fmt.Fprintf(progress, "simulated %d/%d compositions\n", done, n)
		}
		return nil
	})
	close(runs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return genErr
}

// Data is the training table read from the history, with the name of each
// group's composition.
type Data struct {
	train.Dataset
	Names []string // Names[g] is the composition of group g
	// Failed holds the groups whose composition's latest verdict is not
	// healthy.
	Failed map[int64]bool
	// Health is, per group, the health of each service the outcome
	// reports on; Touched is, per row, the indexes into its group's Health
	// of the services its decision touches (simulate.Touched).
	Health  map[int64][]bool
	Touched [][]int
}

// Load reads, from compositions created in [from, to) (zero: open), the
// chosen candidates of the current feature schema into a dataset grouped by
// composition, each labelled by the health of the services it touches (see
// label).
func Load(ctx context.Context, st *store.Store, from, to time.Time) (*Data, error) {
	rows, err := st.TrainingRows(ctx, features.SchemaHash(), from, to)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, domain.Errorf(domain.ENOTFOUND, "no training rows with feature schema %s in the history (simulate some with --simulate N)", features.SchemaHash())
	}
	health, err := st.ServiceHealth(ctx)
	if err != nil {
		return nil, err
	}
	d := &Data{Dataset: train.Dataset{Names: features.Names[:]}, Failed: map[int64]bool{}, Health: map[int64][]bool{}}
	last := ""
	for _, r := range rows {
		if len(r.Features) != features.Count {
			return nil, fmt.Errorf("composition %s conflict %d: %d features recorded, the schema has %d", r.CompositionName, r.Conflict, len(r.Features), features.Count)
		}
		key := r.CompositionName + "/" + r.CompositionID
		if key != last {
			d.Names = append(d.Names, r.CompositionName)
			last = key
		}
		x := make([]float64, len(r.Features))
		for i, v := range r.Features {
			x[i] = float64(v)
		}
		y, touched := label(r, health[r.CompositionID])
		d.Touched = append(d.Touched, touched)
		d.X = append(d.X, x)
		d.Y = append(d.Y, y)
		g := int64(len(d.Names) - 1)
		d.Group = append(d.Group, g)
		if _, ok := d.Health[g]; !ok {
			hs := make([]bool, len(health[r.CompositionID]))
			for i, h := range health[r.CompositionID] {
				hs[i] = h.Healthy
			}
			d.Health[g] = hs
		}
		if !r.Healthy {
			d.Failed[int64(len(d.Names)-1)] = true
		}
	}
	return d, nil
}

// Quality is the decision quality of each policy on held-out compositions:
// the mean, over compositions, of the ground truth's probability that the
// environment is healthy with the policy's choices.
type Quality struct {
	Compositions int
	Success      map[string]float64 // by policy name
	Order        []string
}

// DecisionQuality replays the held-out compositions (those of groups, when
// they are compositions of sim's seed) under FIRST_WIN, LAST_WIN, PRIORITY,
// the oracle and each scoring network, each with the history the
// composition saw, and returns the mean success per policy.
func DecisionQuality(ctx context.Context, st *store.Store, sim *simulate.Simulator, seed uint64, names []string, nets map[string]*nn.Network) (*Quality, error) {
	// The sources' track record before each composition, replayed from the
	// recorded outcomes in name order (the order they were simulated in).
	results, err := st.CompositionResults(ctx)
	if err != nil {
		return nil, err
	}
	want := map[int]bool{}
	for _, n := range names {
		if i, ok := simIndex(seed, n); ok {
			want[i] = true
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("none of the %d held-out compositions is one of seed %d's simulated ones", len(names), seed)
	}
	before := map[int]simulate.History{}
	h := simulate.History{}
	for _, r := range results {
		i, ok := simIndex(seed, r.Name)
		if ok && want[i] {
			before[i] = h.Clone()
		}
		for _, ref := range r.Sources {
			x := h[ref]
			x.Compositions++
			if r.Healthy {
				x.Healthy++
			}
			h[ref] = x
		}
	}
	policies := []simulate.Policy{
		simulate.Baseline{Strategy: domain.FirstWin}, simulate.Baseline{Strategy: domain.LastWin},
		simulate.Baseline{Strategy: domain.Priority}, simulate.Oracle{},
	}
	var netNames []string
	for name := range nets {
		netNames = append(netNames, name)
	}
	slices.Sort(netNames)
	for _, name := range netNames {
		policies = append(policies, simulate.Model{Label: name, Score: ForwardScorer(nets[name])})
	}
	q := &Quality{Success: map[string]float64{}}
	for _, p := range policies {
		q.Order = append(q.Order, p.Name())
	}
	indices := make([]int, 0, len(before))
	for i := range before {
		indices = append(indices, i)
	}
	slices.Sort(indices)
	for _, i := range indices {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w := sim.World(i)
		for _, p := range policies {
			run, err := w.Settle(p, before[i])
			if err != nil {
				return nil, err
			}
			q.Success[p.Name()] += run.Success
		}
	}
	q.Compositions = len(indices)
	for k := range q.Success {
		q.Success[k] /= float64(q.Compositions)
	}
	return q, nil
}

// ForwardScorer scores rows with the network's own forward pass.
func ForwardScorer(n *nn.Network) simulate.Scorer {
	return func(rows []float32, count int) []float64 {
		out := make([]float64, count)
		x := make([]float64, features.Count)
		for i := range count {
			for j := range x {
				x[j] = float64(rows[i*features.Count+j])
			}
			out[i] = n.Forward(x)
		}
		return out
	}
}

// simIndex parses "sim-<seed>-<index>".
func simIndex(seed uint64, name string) (int, bool) {
	prefix := fmt.Sprintf("sim-%d-", seed)
	if !strings.HasPrefix(name, prefix) {
		return 0, false
	}
	i, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
	return i, err == nil && i >= 0
}

// label is 1 when the services the decision touches are all healthy in the
// composition's latest outcome (simulate.Touched says which), and the
// composition's verdict when it touches none that was observed.
func label(r store.TrainingRow, health []store.ServiceHealth) (float64, []int) {
	env := make([]simulate.ServiceRef, len(health))
	for i, h := range health {
		env[i] = simulate.ServiceRef{Name: h.Service, Source: h.Source, Reads: h.Reads}
	}
	touched := simulate.Touched(r.Key, r.Claimants, env)
	if len(touched) == 0 {
		if r.Healthy {
			return 1, nil
		}
		return 0, nil
	}
	for _, i := range touched {
		if !health[i].Healthy {
			return 0, touched
		}
	}
	return 1, touched
}
