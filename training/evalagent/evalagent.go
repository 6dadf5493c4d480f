// Package evalagent judges the AI_AGENT serving path on the training run's
// own held-out compositions: it regenerates the simulated history the
// model card describes (same seed, same number of compositions), redoes
// the trainer's split by composition to find the held-out ones, and
// settles each of them, with the history it saw, under FIRST_WIN,
// LAST_WIN, PRIORITY, the oracle, the trainer's forward pass of the
// card's network, and the AI_AGENT resolver itself (features, one batched
// onnxruntime Run per round, joint choice). The simulator's ground truth
// scores each; the first five reproduce the card's table, and AI_AGENT's
// row says whether serving decides as well as training measured.
package evalagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/registry"
	"github.com/snapcompose/snapcompose/training/simulate"
	"github.com/snapcompose/snapcompose/training/train"
)

// Config is one evaluation.
type Config struct {
	Card   *registry.Card
	Scorer agent.Scorer // the ONNX model the card describes
	Pods   []simulate.Pod
	// Limit, if positive, judges only the first Limit held-out
	// compositions (in simulation order), which also shortens the history
	// that must be regenerated.
	Limit    int
	Progress io.Writer // nil is silent
}

// Row is one policy's result.
type Row struct {
	Policy  string  `json:"policy"`
	Success float64 `json:"success"`
	// Card is the card's figure for the policy, when it has one.
	Card *float64 `json:"card,omitempty"`
}

// Report is the table.
type Report struct {
	ModelVersion string        `json:"model_version"`
	Seed         uint64        `json:"seed"`
	Compositions int           `json:"compositions"` // held-out compositions judged
	HeldOut      int           `json:"held_out"`     // in the card's split
	Rows         []Row         `json:"rows"`
	Duration     time.Duration `json:"duration_ns"`
}

// AIAgent names the serving path's row.
const AIAgent = "AI_AGENT (serving)"

// Run evaluates.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	start := time.Now()
	c := cfg.Card
	if c == nil || c.Network == nil {
		return nil, fmt.Errorf("the model card has no network to replay")
	}
	if c.Data.Simulated <= 0 {
		return nil, domain.Errorf(domain.EINVALID, "model %s was not trained on simulated history, so the simulator cannot judge its held-out compositions", c.ModelVersion)
	}
	sim, err := simulate.New(c.Seed, cfg.Pods)
	if err != nil {
		return nil, err
	}
	n := c.Data.Simulated
	say := func(format string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", a...)
		}
	}

	// The groups the trainer saw: compositions with at least one decision,
	// in name (= simulation) order. Splitting them as it did gives the
	// held-out ones. Settling the history once finds them.
	say("composing %d simulated compositions (seed %d) to find the groups", n, c.Seed)
	has := make([]bool, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += len(errs) {
				if has[i], errs[w] = sim.World(i).HasDecisions(); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return nil, err
	}
	var group []int64
	var index []int // index[g] is group g's composition
	for i, ok := range has {
		if ok {
			group = append(group, int64(len(index)))
			index = append(index, i)
		}
	}
	if len(index) != c.Data.Compositions {
		return nil, fmt.Errorf("the regenerated history has %d compositions with decisions; model %s was trained on %d: this simulator is not the one that made its history",
			len(index), c.ModelVersion, c.Data.Compositions)
	}
	tc := train.DefaultConfig()
	tc.Seed, tc.TestFraction, tc.ValidationFraction = c.Seed, c.Config.TestFraction, c.Config.ValidationFraction
	_, _, test, err := train.Split(train.Dataset{Group: group}, tc)
	if err != nil {
		return nil, err
	}
	if len(test.Groups) != c.Split.Test.Compositions {
		return nil, fmt.Errorf("the split gives %d held-out compositions; the card says %d", len(test.Groups), c.Split.Test.Compositions)
	}
	held := make([]int, 0, len(test.Groups))
	for _, g := range test.Groups {
		held = append(held, index[g])
	}
	slices.Sort(held)
	rep := &Report{ModelVersion: c.ModelVersion, Seed: c.Seed, HeldOut: len(held)}
	if cfg.Limit > 0 && cfg.Limit < len(held) {
		held = held[:cfg.Limit]
	}
	want := map[int]bool{}
	for _, i := range held {
		want[i] = true
	}

	serving := simulate.Serving{Label: AIAgent, New: func(env features.Env) domain.Resolver {
		return agent.NewLearned(cfg.Scorer, agent.LearnedOptions{
			History: func(context.Context) (map[domain.SourceRef]features.SourceHistory, error) { return env.History, nil },
			Now:     func() time.Time { return env.Now },
		})
	}}
	policies := []simulate.Policy{
		simulate.Baseline{Strategy: domain.FirstWin}, simulate.Baseline{Strategy: domain.LastWin},
		simulate.Baseline{Strategy: domain.Priority}, simulate.Oracle{},
		simulate.Model{Label: c.Kind, Score: pipeline.ForwardScorer(c.Network)},
		serving,
	}
	sum := make([]float64, len(policies))
	say("judging %d held-out compositions under %d policies", len(held), len(policies))
	last := held[len(held)-1]
	done := 0
	err = sim.Generate(last+1, func(run *simulate.Run, before simulate.History) error {
		i := run.World.Index
		if !want[i] {
			return ctx.Err()
		}
		for k, p := range policies {
			r, err := run.World.Settle(p, before)
			if err != nil {
				return err
			}
			sum[k] += r.Success
		}
		done++
		if cfg.Progress != nil && len(held) >= 10 && done%(len(held)/10) == 0 {
			say("judged %d/%d", done, len(held))
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	rep.Compositions = len(held)
	for k, p := range policies {
		row := Row{Policy: p.Name(), Success: sum[k] / float64(len(held))}
		if c.DecisionQuality != nil && rep.Compositions == rep.HeldOut {
			for _, q := range c.DecisionQuality.Policies {
				if q.Policy == p.Name() {
					v := float64(q.Success)
					row.Card = &v
				}
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// WriteText prints the table.
func WriteText(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "decision quality of model %s on %d of the %d held-out compositions (seed %d; the simulator's ground truth)\n",
		r.ModelVersion, r.Compositions, r.HeldOut, r.Seed)
	fmt.Fprintf(w, "  %-22s %8s %8s\n", "policy", "success", "card")
	for _, row := range r.Rows {
		card := "-"
		if row.Card != nil {
			card = fmt.Sprintf("%.1f%%", 100**row.Card)
		}
		fmt.Fprintf(w, "  %-22s %7.1f%% %8s\n", row.Policy, 100*row.Success, card)
	}
	_, err := fmt.Fprintf(w, "(%.1fs)\n", r.Duration.Seconds())
	return err
}
