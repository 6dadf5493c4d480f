// Package jobs runs compositions as durable jobs on River, the
// Postgres-native job queue: a POST records the composition and inserts
// its job in one transaction, and any server process sharing the database
// works it (DESIGN.md steps 1-8). A job that was cut off by a crash is
// rescued by River and run again; every stage checks what the history
// already holds, so a composition is recorded, provisioned and
// instantiated once however many times its job runs.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/manifest"
	"github.com/snapcompose/snapcompose/internal/store"
)

// Composer composes a manifest into everything it decided
// (orchestrator.Compose with the server's sources and strategies).
type Composer interface {
	Compose(ctx context.Context, m *domain.Manifest) (*domain.PlanRecord, error)
}

// Runner carries out one composition, stage by stage.
type Runner struct {
	Store    *store.Store
	Composer Composer
	// Features fills rec's feature vectors (and schema) for the history;
	// nil records none.
	Features func(ctx context.Context, m *domain.Manifest, rec *domain.PlanRecord) error
	// Pool is the capacity pool compositions are provisioned from.
	Pool string
	// OutputDir holds each composition's environment, in a directory named
	// by its id.
	OutputDir string
	Blobs     instantiate.Blobs
	LiveImage string
	// PlanJSON writes a plan as the API serves it (plan.json).
	PlanJSON func(*domain.Plan) ([]byte, error)
	// Observe, when set, is told how long each stage took.
	Observe func(stage string, d time.Duration)
	Logger  *slog.Logger
}

// Stages, in order, as they are named in timings and metrics.
const (
	StageCompose     = "compose"
	StageRecord      = "record"
	StageProvision   = "provision"
	StageInstantiate = "instantiate"
)

// Run carries composition id through every stage it has not been through:
// compose, record the plan, reserve its capacity, instantiate it. A
// composition that cannot be made ends failed with the reason, and frees
// its capacity; one cancelled while it runs ends cancelled. Run returns an
// error only when the job should run again (the process is stopping, the
// database is unreachable).
func (r *Runner) Run(ctx context.Context, id string) error {
	c, err := r.Store.GetComposition(ctx, id)
	if err != nil {
		if code := domain.ErrorCode(err); code == domain.ENOTFOUND || code == domain.EINVALID {
			return river.JobCancel(err) // nothing to run, ever
		}
		return err
	}
	if c.Status.Final() {
		return nil // finished by an earlier attempt, or cancelled before it started
	}
	log := r.Logger.With("composition_id", id)
	run := &attempt{r: r, ctx: ctx, id: id, timings: map[string]int64{}, log: log}
	err = run.stages(c)
	if err == nil {
		return nil
	}
	return run.finish(err)
}

// attempt is one run of a composition's job.
type attempt struct {
	r       *Runner
	ctx     context.Context
	id      string
	timings map[string]int64
	log     *slog.Logger
}

func (a *attempt) stages(c *store.Composition) error {
	m, err := manifest.ParseBytes(c.Manifest)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := a.status(domain.StatusRunning, nil); err != nil {
		return err
	}

	t := time.Now()
	rec, err := a.r.Composer.Compose(a.ctx, m)
	a.took(StageCompose, t)
	if err != nil && rec == nil {
		return err
	}
	infeasible := err
	if a.ctx.Err() != nil {
		return a.ctx.Err()
	}

	t = time.Now()
	if c.Plan == nil {
		if a.r.Features != nil {
			if err := a.r.Features(a.ctx, m, rec); err != nil {
				return err
			}
		}
		if err := a.r.Store.RecordPlan(a.ctx, a.id, rec); err != nil {
			return err
		}
	} else {
		// An earlier attempt recorded the plan: that is the composition's,
		// whatever this attempt's retrieval saw.
		rec.Plan = c.Plan
	}
	a.took(StageRecord, t)
	if infeasible != nil {
		feasible := false
		a.r.Store.SetCompositionStatus(a.ctx, a.id, store.StatusUpdate{Status: domain.StatusPlanned, Feasible: &feasible})
		return infeasible
	}
	feasible := true
	if err := a.status(domain.StatusPlanned, &feasible); err != nil {
		return err
	}

	t = time.Now()
	if err := a.status(domain.StatusProvisioning, nil); err != nil {
		return err
	}
	_, err = a.r.Store.Reserve(a.ctx, a.r.Pool, a.id, rec.Plan.Totals)
	if err != nil && domain.ErrorCode(err) != domain.ECONFLICT { // ECONFLICT: an earlier attempt reserved it
		return err
	}
	if err := a.r.Store.SetCompositionPlace(a.ctx, a.id, a.r.Pool, ""); err != nil {
		return err
	}
	a.took(StageProvision, t)
	if err := a.status(domain.StatusProvisioned, nil); err != nil {
		return err
	}

	t = time.Now()
	dir := filepath.Join(a.r.OutputDir, a.id)
	opt := instantiate.Options{Blobs: a.r.Blobs, LiveImage: a.r.LiveImage}
	if a.r.PlanJSON != nil {
		if opt.PlanJSON, err = a.r.PlanJSON(rec.Plan); err != nil {
			return err
		}
	}
	if _, err := instantiate.Write(a.ctx, rec, dir, opt); err != nil {
		return err
	}
	if err := a.r.Store.SetCompositionPlace(a.ctx, a.id, "", placeOf(dir)); err != nil {
		return err
	}
	a.took(StageInstantiate, t)
	if err := a.status(domain.StatusInstantiated, nil); err != nil {
		return err
	}
	a.timings["total"] = time.Since(start).Milliseconds()
	if err := a.status(domain.StatusSucceeded, nil); err != nil {
		return err
	}
	a.log.Info("composition succeeded", "dir", dir, "total_ms", a.timings["total"])
	return nil
}

// took records how long stage took since t.
func (a *attempt) took(stage string, t time.Time) {
	d := time.Since(t)
	a.timings[stage] = d.Milliseconds()
	if a.r.Observe != nil {
		a.r.Observe(stage, d)
	}
}

// status moves the composition on, with the timings so far. A composition
// finished meanwhile (cancelled by a user) stops the attempt.
func (a *attempt) status(s domain.CompositionStatus, feasible *bool) error {
	err := a.r.Store.SetCompositionStatus(a.ctx, a.id, store.StatusUpdate{Status: s, Timings: a.timings, Feasible: feasible})
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return errFinished
	}
	return err
}

// errFinished: the composition reached a final status from elsewhere.
var errFinished = errors.New("the composition has finished meanwhile")

// finish settles an attempt that did not succeed: cancelled, stopped for
// a restart, or failed. Whatever it held is released unless the job runs
// again.
func (a *attempt) finish(err error) error {
	// The database work after a cancellation must not be cut off by it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), 30*time.Second)
	defer cancel()
	cause := context.Cause(a.ctx)
	switch {
	case errors.Is(err, errFinished):
		// Finished from elsewhere. Cancelled: free what this attempt held
		// and made. (Succeeded — by an attempt that was taken for cut off
		// but was not — keeps it all.)
		c, gerr := a.r.Store.GetComposition(ctx, a.id)
		if gerr != nil {
			return gerr
		}
		if c.Status == domain.StatusSucceeded {
			return nil
		}
		return a.undo(ctx)
	case a.ctx.Err() != nil && errors.Is(cause, river.ErrJobCancelledRemotely):
		if rerr := a.undo(ctx); rerr != nil {
			return rerr
		}
		serr := a.r.Store.SetCompositionStatus(ctx, a.id, store.StatusUpdate{Status: domain.StatusCancelled, Error: "cancelled", Timings: a.timings})
		if serr != nil && domain.ErrorCode(serr) != domain.ECONFLICT {
			return serr
		}
		a.log.Info("composition cancelled")
		return err
	case a.ctx.Err() != nil && !errors.Is(a.ctx.Err(), context.DeadlineExceeded):
		// The process is stopping: the job runs again, and picks up here.
		return fmt.Errorf("composition %s: stopped before it finished: %w", a.id, err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		// The database went away: nothing can be recorded now; the job
		// runs again when it is back, and picks up where it stopped.
		return fmt.Errorf("composition %s: %w", a.id, err)
	}
	if a.ctx.Err() != nil {
		err = fmt.Errorf("the composition did not finish within its job's time limit: %w", err)
	}
	if rerr := a.undo(ctx); rerr != nil {
		return rerr
	}
	msg := domain.ErrorMessage(err) // with its problems
	serr := a.r.Store.SetCompositionStatus(ctx, a.id, store.StatusUpdate{Status: domain.StatusFailed, Error: msg, Timings: a.timings})
	if serr != nil && domain.ErrorCode(serr) != domain.ECONFLICT {
		return serr
	}
	a.log.Info("composition failed", "error", msg)
	return nil
}

// undo lets go of what the composition held: its reservation and its
// environment's directory.
func (a *attempt) undo(ctx context.Context) error {
	if _, err := a.r.Store.Release(ctx, a.id); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(a.r.OutputDir, a.id))
}

// placeOf names where dir lies for the history: "<host>:<dir>".
func placeOf(dir string) string {
	host, _ := os.Hostname()
	return host + ":" + dir
}

// LocalDir reads a composition's recorded place (see placeOf): the host and
// directory, and whether the directory lies on this machine.
func LocalDir(place string) (host, dir string, here bool) {
	host, dir, _ = strings.Cut(place, ":")
	this, _ := os.Hostname()
	return host, dir, place != "" && host == this
}
