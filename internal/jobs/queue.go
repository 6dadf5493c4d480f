package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

// ComposeArgs is a composition's job: which composition to carry out.
// Everything else is in the composition's row.
type ComposeArgs struct {
	CompositionID string `json:"composition_id"`
}

// Kind implements river.JobArgs.
func (ComposeArgs) Kind() string { return "snapcompose_compose" }

// queueName is the River queue compositions run in.
const queueName = "compositions"

// InsertOpts implements river.JobArgsWithInsertOpts: a composition whose
// attempts keep being cut off (crashes) is given up after a few.
func (ComposeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 5}
}

type composeWorker struct {
	river.WorkerDefaults[ComposeArgs]
	run     *Runner
	timeout time.Duration
}

func (w *composeWorker) Work(ctx context.Context, job *river.Job[ComposeArgs]) error {
	return w.run.Run(ctx, job.Args.CompositionID)
}

func (w *composeWorker) Timeout(*river.Job[ComposeArgs]) time.Duration { return w.timeout }

// Config configures a Queue.
type Config struct {
	// Workers is how many compositions this process works at once; 0
	// makes a process that only submits.
	Workers int
	// JobTimeout bounds one attempt of a composition (default 10m).
	JobTimeout time.Duration
	// RescueAfter is how long an attempt may stay running before it is
	// taken for cut off (its process died) and run again; it must exceed
	// JobTimeout (default JobTimeout + 1m).
	RescueAfter time.Duration
	// ID names this process among the queue's workers (River's client id);
	// "" lets River choose.
	ID     string
	Logger *slog.Logger
}

// DefaultJobTimeout bounds one attempt of a composition.
const DefaultJobTimeout = 10 * time.Minute

// Queue submits compositions and, with workers, carries them out.
type Queue struct {
	client  *river.Client[pgx.Tx]
	store   *store.Store
	pool    *pgxpool.Pool
	working bool
}

// New returns a queue on pool (whose schema must be migrated) that runs
// compositions with run.
func New(pool *pgxpool.Pool, st *store.Store, run *Runner, cfg Config) (*Queue, error) {
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = cfg.JobTimeout + time.Minute
	}
	if cfg.RescueAfter <= cfg.JobTimeout {
		return nil, domain.Errorf(domain.EINVALID, "the rescue time (%s) must exceed the job timeout (%s)", cfg.RescueAfter, cfg.JobTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rc := &river.Config{
		ID:                   cfg.ID,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		Logger:               slog.New(levelAtLeast{cfg.Logger.Handler(), slog.LevelWarn}),
	}
	if cfg.Workers > 0 {
		workers := river.NewWorkers()
		if err := river.AddWorkerSafely(workers, &composeWorker{run: run, timeout: cfg.JobTimeout}); err != nil {
			return nil, err
		}
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{queueName: {MaxWorkers: cfg.Workers}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("starting the job queue: %w", err)
	}
	return &Queue{client: client, store: st, pool: pool, working: cfg.Workers > 0}, nil
}

// Start starts working jobs (when the queue has workers). It returns at
// once; Stop stops.
func (q *Queue) Start(ctx context.Context) error {
	if !q.working {
		return nil
	}
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("starting the job queue: %w", err)
	}
	return nil
}

// Stop lets running compositions finish, for at most the time ctx allows;
// those still running then are cut off and run again by another process
// (or this one, restarted).
func (q *Queue) Stop(ctx context.Context) error {
	if !q.working {
		return nil
	}
	err := q.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = q.client.StopAndCancel(cctx)
	}
	return err
}

// Submit records composition sub and inserts its job in one transaction
// (see store.SubmitComposition for the idempotency key).
func (q *Queue) Submit(ctx context.Context, sub store.Submission) (store.Submitted, error) {
	sub.Enqueue = func(ctx context.Context, tx pgx.Tx, id string) error {
		_, err := q.client.InsertTx(ctx, tx, ComposeArgs{CompositionID: id}, nil)
		return err
	}
	return q.store.SubmitComposition(ctx, sub)
}

// Job is what the queue knows of a composition's job.
type Job struct {
	ID          int64     `json:"id"`
	State       string    `json:"state"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	AttemptedBy []string  `json:"attempted_by"` // the processes that ran it, in order
	Errors      []string  `json:"errors,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// JobOf returns composition id's job. It returns ENOTFOUND when there is
// none (a composition recorded by other means).
func (q *Queue) JobOf(ctx context.Context, id string) (Job, error) {
	row, err := q.jobRow(ctx, id)
	if err != nil {
		return Job{}, err
	}
	j := Job{ID: row.ID, State: string(row.State), Attempt: row.Attempt, MaxAttempts: row.MaxAttempts,
		AttemptedBy: row.AttemptedBy, CreatedAt: row.CreatedAt}
	if j.AttemptedBy == nil {
		j.AttemptedBy = []string{}
	}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, e.Error)
	}
	return j, nil
}

func (q *Queue) jobRow(ctx context.Context, id string) (*rivertype.JobRow, error) {
	var jobID int64
	err := q.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = $1 AND args @> jsonb_build_object('composition_id', $2::text) ORDER BY id DESC LIMIT 1`,
		ComposeArgs{}.Kind(), id).Scan(&jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "composition %s has no job", id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the job of composition %s: %w", id, err)
	}
	return q.client.JobGet(ctx, jobID)
}

// Cancel cancels composition id. A composition whose job has not started
// ends cancelled at once; a running one is told to stop, and ends
// cancelled when it has let go of what it held. It returns ECONFLICT when
// the composition has already finished.
func (q *Queue) Cancel(ctx context.Context, id string) error {
	c, err := q.store.GetComposition(ctx, id)
	if err != nil {
		return err
	}
	if c.Status.Final() {
		return domain.Errorf(domain.ECONFLICT, "composition %s has already finished: it %s", id, c.Status)
	}
	row, err := q.jobRow(ctx, id)
	if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		return err
	}
	if row != nil {
		if row, err = q.client.JobCancel(ctx, row.ID); err != nil {
			return fmt.Errorf("cancelling the job of composition %s: %w", id, err)
		}
		if row.State == rivertype.JobStateRunning {
			return nil // its worker cancels it
		}
	}
	// Not running: nothing else will settle it.
	if _, err := q.store.Release(ctx, id); err != nil {
		return err
	}
	err = q.store.SetCompositionStatus(ctx, id, store.StatusUpdate{Status: domain.StatusCancelled, Error: "cancelled"})
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return nil // it finished meanwhile
	}
	return err
}

// levelAtLeast passes on only records at or above min: River's own logs
// at info are its routine.
type levelAtLeast struct {
	slog.Handler
	min slog.Level
}

func (h levelAtLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelAtLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelAtLeast{h.Handler.WithAttrs(attrs), h.min}
}

func (h levelAtLeast) WithGroup(name string) slog.Handler {
	return levelAtLeast{h.Handler.WithGroup(name), h.min}
}

// Settle makes a composition whose job River gave up on (discarded after
// its attempts were all cut off) or cancelled before it ran end so too,
// holding nothing; it reports whether it changed anything. Compositions
// are settled when they are read, so none stays "running" forever.
func (q *Queue) Settle(ctx context.Context, c *store.Composition, j Job) (bool, error) {
	if c.Status.Final() {
		return false, nil
	}
	var u store.StatusUpdate
	switch j.State {
	case string(rivertype.JobStateDiscarded):
		u = store.StatusUpdate{Status: domain.StatusFailed, Error: fmt.Sprintf("its job was given up after %d attempts that did not finish", j.Attempt)}
		if n := len(j.Errors); n > 0 {
			u.Error += "; the last: " + j.Errors[n-1]
		}
	case string(rivertype.JobStateCancelled):
		u = store.StatusUpdate{Status: domain.StatusCancelled, Error: "cancelled"}
	default:
		return false, nil
	}
	if _, err := q.store.Release(ctx, c.ID); err != nil {
		return false, err
	}
	err := q.store.SetCompositionStatus(ctx, c.ID, u)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return false, nil
	}
	return err == nil, err
}
