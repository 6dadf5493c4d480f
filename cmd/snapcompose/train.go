package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/registry"
)

const trainSynopsis = "snapcompose train [--simulate N] [--seed S] [--pods FILE] [--from RFC3339] [--to RFC3339] [--promote] [--out DIR] [--workers N]"

// trainCmd trains the agent's model from the history in DATABASE_URL (after
// simulating some with --simulate N), registers it as a challenger and
// promotes it when it beats the champion (or with --promote). Progress goes
// to stderr, the summary to stdout. Exit codes: 0 trained and registered
// (promoted or not), 2 bad flags or no training rows, 1 a database failure.
func (m *Main) trainCmd(ctx context.Context, args []string) error {
	fs := m.flags("train")
	simulateN := fs.Int("simulate", 0, "first simulate `N` compositions into the history (to bootstrap without real history)")
	seed := fs.Uint64("seed", 1, "`seed` of the simulator, the split and the MLP's initial weights")
	pods := fs.String("pods", registry.DefaultPods, "OpenB pod list `file` the simulator sizes services from")
	from := fs.String("from", "", "train on compositions created at or after this `time` (RFC 3339)")
	to := fs.String("to", "", "train on compositions created before this `time` (RFC 3339)")
	promote := fs.Bool("promote", false, "promote the new model even if it does not beat the promoted one")
	out := fs.String("out", "", "also export the model and its card into `dir`ectory ("+registry.ONNXFile+", "+registry.CardFile+")")
	realWeight := fs.Int("real-weight", registry.DefaultRealWeight, "how many times a real composition's decision counts against a simulated one's (`N` >= 1)")
	workers := fs.Int("workers", 2, "`number` of concurrent writers of simulated compositions")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nTrains the AI_AGENT model from the history in DATABASE_URL and registers it.\n\n", trainSynopsis)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *simulateN < 0 {
		return domain.Errorf(domain.EINVALID, "--simulate: want 0 or more compositions, got %d", *simulateN)
	}
	if *realWeight < 1 || *realWeight > 100 {
		return domain.Errorf(domain.EINVALID, "--real-weight: want 1 to 100, got %d", *realWeight)
	}
	if *workers < 1 || *workers > 64 {
		return domain.Errorf(domain.EINVALID, "--workers: want 1 to 64, got %d", *workers)
	}
	fromT, err := parseTime("--from", *from)
	if err != nil {
		return err
	}
	toT, err := parseTime("--to", *to)
	if err != nil {
		return err
	}
	if !fromT.IsZero() && !toT.IsZero() && !fromT.Before(toT) {
		return domain.Errorf(domain.EINVALID, "--from %s is not before --to %s", *from, *to)
	}
	st, err := m.openStore(ctx, "train")
	if err != nil {
		return err
	}
	defer st.Close()
	o, err := registry.Train(ctx, st, registry.Options{
		Simulate: *simulateN, Seed: *seed, Pods: *pods, Workers: *workers,
		From: fromT, To: toT, Promote: *promote, Progress: m.Stderr, RealWeight: *realWeight, By: "cli",
	})
	if err != nil {
		return err
	}
	printOutcome(m.Stdout, o)
	if *out != "" {
		ex, err := registry.Export(ctx, st, o.Version.Version, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "exported %s and %s\n", ex.ONNXPath, ex.CardPath)
	}
	return nil
}

// parseTime reads an RFC 3339 time; "" is the zero time (an open end).
func parseTime(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, domain.Errorf(domain.EINVALID, "%s: %q is not an RFC 3339 time such as 2026-01-31T00:00:00Z", flagName, s)
	}
	return t, nil
}

// openStore opens DATABASE_URL and checks its schema.
func (m *Main) openStore(ctx context.Context, cmd string) (*store.Store, error) {
	url := m.getenv("DATABASE_URL")
	if url == "" {
		return nil, domain.Errorf(domain.EINVALID, "%s: DATABASE_URL is not set: set it to the snapcompose database (`snapcompose db start` starts a local one and prints its URL)", cmd)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := st.Ready(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// printOutcome writes the readable summary of a training run.
func printOutcome(w io.Writer, o *registry.Outcome) {
	d, c := o.Data, o.Card
	fmt.Fprintf(w, "training run %d: %d rows of %d compositions (%s … %s), %.1f%% labelled healthy\n",
		o.Run.ID, c.Data.Rows, c.Data.Compositions, c.Data.FirstComposition, c.Data.LastComposition,
		100*float64(c.Data.Positives)/float64(max(len(d.X), 1)))
	if og := c.Data.Origins; og != nil {
		fmt.Fprintf(w, "real history: %d compositions, %d decisions (each counted %d times); simulated: %d compositions, %d decisions\n",
			og.Real.Compositions, og.Real.Rows, og.Real.Weight, og.Simulated.Compositions, og.Simulated.Rows)
		if og.RealTest != nil {
			fmt.Fprintf(w, "on the %d held-out real decisions: log loss %.4f, AUC %.3f\n", og.RealTestRows, float64(og.RealTest.LogLoss), float64(og.RealTest.AUC))
		}
	}
	if !o.CreatedFirst.IsZero() {
		fmt.Fprintf(w, "created %s to %s", o.CreatedFirst.Format(time.RFC3339), o.CreatedLast.Format(time.RFC3339))
		if o.Simulated > 0 {
			fmt.Fprintf(w, " (%d simulated by this run in %.1fs)", o.Simulated, o.Durations.Simulate.Seconds())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	o.Result.Summary(w)
	fmt.Fprintln(w)
	printQuality(w, c)
	fmt.Fprintln(w)
	v := o.Version
	if o.Existing {
		fmt.Fprintf(w, "model %s (%s, %s) was registered already: the same network from the same data\n", v.Version, c.Kind, v.ONNXDigest)
	} else {
		fmt.Fprintf(w, "registered model %s (%s, %d bytes, %s)\n", v.Version, c.Kind, len(o.ONNX), v.ONNXDigest)
	}
	cmp := o.Comparison
	if o.ChampionMetrics != nil {
		which := "all the test rows"
		if cmp.UnseenByChampion {
			which = "the test rows of compositions newer than the champion"
		}
		fmt.Fprintf(w, "champion/challenger on the same %d held-out rows (%s): log loss on the compositions' verdicts, challenger %.5f, champion %s %.5f\n",
			cmp.Rows, which, float64(cmp.ChallengerLogLoss), cmp.Champion, float64(cmp.ChampionLogLoss))
	}
	if o.Promoted {
		fmt.Fprintf(w, "promoted %s: %s\n", v.Version, cmp.Reason)
	} else {
		fmt.Fprintf(w, "not promoted; %s stays the champion: %s (`snapcompose model promote %s` promotes it anyway)\n", cmp.Champion, cmp.Reason, v.Version)
	}
}

// printQuality writes the decision-quality table of a card.
func printQuality(w io.Writer, c *registry.Card) {
	q := c.DecisionQuality
	if q == nil {
		fmt.Fprintf(w, "decision quality: %s\n", c.DecisionQualityNote)
		return
	}
	fmt.Fprintf(w, "decision quality on %d held-out compositions (the simulator's ground truth, seed %d):\n", q.Compositions, q.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  policy\tsuccess")
	for _, p := range q.Policies {
		label := p.Policy
		if p.Policy == q.Chosen {
			label += " = AI_AGENT"
		}
		fmt.Fprintf(tw, "  %s\t%6s\n", label, pct(float64(p.Success)))
	}
	tw.Flush()
	bestBase, bestName := math.Inf(-1), ""
	for _, b := range []string{"FIRST_WIN", "LAST_WIN", "PRIORITY"} {
		if s := q.Success(b); s > bestBase {
			bestBase, bestName = s, b
		}
	}
	ai, oracle := q.Success(q.Chosen), q.Success("oracle")
	fmt.Fprintf(w, "AI_AGENT (%s): %+.1f points against the best baseline (%s), %.1f points below the oracle\n",
		q.Chosen, 100*(ai-bestBase), bestName, 100*(oracle-ai))
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// retrainer runs registry.Train every interval in the background of serve,
// on the whole history up to the time of the run, whenever compositions
// came in since the last run. Runs never overlap: the next waits for the
// current one. stop cancels a run in progress and waits for it.
type retrainer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startRetrainer(ctx context.Context, st *store.Store, every time.Duration, logger *slog.Logger) *retrainer {
	ctx, cancel := context.WithCancel(ctx)
	r := &retrainer{cancel: cancel}
	r.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var last time.Time // the end of the last successful run's window
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := time.Now()
			if !last.IsZero() {
				n, err := registry.CompositionsSince(ctx, st, last)
				if err != nil {
					logger.Error("retraining: reading the history", "error", err.Error())
					continue
				}
				if n == 0 {
					logger.Info("retraining: no new compositions since the last run", "since", last)
					continue
				}
			}
			logger.Info("retraining", "to", now)
			o, err := registry.Train(ctx, st, registry.Options{To: now, Seed: 1})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				level := slog.LevelError
				if domain.ErrorCode(err) == domain.ENOTFOUND {
					level = slog.LevelInfo // no history yet
				}
				logger.Log(ctx, level, "retraining failed", "error", domain.ErrorMessage(err))
				continue
			}
			last = now
			m := o.Card.ChosenMetrics()
			logger.Info("retrained", "run", o.Run.ID, "version", o.Version.Version, "kind", o.Card.Kind,
				"compositions", o.Card.Data.Compositions, "real_compositions", o.RealCompositions, "rows", o.Card.Data.Rows,
				"test_auc", float64(m.AUC), "test_log_loss", float64(m.LogLoss),
				"promoted", o.Promoted, "reason", o.Comparison.Reason)
		}
	})
	return r
}

func (r *retrainer) stop() {
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
}

// modelSchemaNote says whether a model's feature schema is this build's.
func modelSchemaNote(schema, current string) string {
	s := strings.TrimPrefix(schema, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	if schema == current {
		return s
	}
	return s + " (not this build's)"
}
