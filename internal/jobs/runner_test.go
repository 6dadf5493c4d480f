package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/jobs"
	"github.com/snapcompose/snapcompose/internal/manifest"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
)

const seed = "../../examples/seed"

// blobs serves the catalog's files, or fails with err when it is set.
type blobs struct {
	cat *catalog.Catalog
	err func() error
}

func (b blobs) Open(ctx context.Context, src domain.Source, f domain.PlanFile) (io.ReadCloser, error) {
	if b.err != nil {
		if err := b.err(); err != nil {
			return nil, err
		}
	}
	return b.cat.Blob(ctx, src.ID, f.Path, f.Digest)
}

// composerFunc is a Composer with a hook before it composes.
type composerFunc struct {
	o      *orchestrator.Orchestrator
	before func()
}

func (c composerFunc) Compose(ctx context.Context, m *domain.Manifest) (*domain.PlanRecord, error) {
	if c.before != nil {
		c.before()
	}
	return c.o.Compose(ctx, m)
}

type fixture struct {
	st     *store.Store
	runner *jobs.Runner
	comp   *composerFunc
	blobs  *blobs
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, _ := pgtest.NewDatabase(t)
	st := store.New(pool)
	cat, err := catalog.Open(filepath.Join(seed, "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := agent.New(domain.Priority)
	f := &fixture{st: st, comp: &composerFunc{o: orchestrator.New().WithSource(domain.TemplateSource, cat).WithResolver(r)}, blobs: &blobs{cat: cat}}
	f.runner = &jobs.Runner{Store: st, Composer: f.comp, Pool: "p", OutputDir: t.TempDir(), Blobs: f.blobs,
		Logger: slog.New(slog.DiscardHandler)}
	if err := st.UpsertPool(context.Background(), "p", domain.Resources{CPUMillicores: 100_000, MemoryBytes: 1 << 40, DiskBytes: 1 << 42}); err != nil {
		t.Fatal(err)
	}
	return f
}

// submit records the seed's templates-only manifest, edited by edit.
func (f *fixture) submit(t *testing.T, edit func(string) string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(seed, "manifest.templates.json"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	if edit != nil {
		body = edit(body)
	}
	m, err := manifest.ParseBytes([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := f.st.SubmitComposition(context.Background(), store.Submission{Manifest: m, Raw: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return sub.ID
}

func (f *fixture) counts(t *testing.T, id string) (conflicts, reservations, held int) {
	t.Helper()
	ctx := context.Background()
	f.st.Pool().QueryRow(ctx, `SELECT count(*) FROM conflicts WHERE composition_id = $1`, id).Scan(&conflicts)
	f.st.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE released_at IS NULL) FROM reservations WHERE composition_id = $1`, id).Scan(&reservations, &held)
	return
}

func TestRunSucceedsOnceAndIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.submit(t, nil)
	if err := f.runner.Run(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c, err := f.st.GetComposition(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != domain.StatusSucceeded || c.Plan == nil || c.Pool != "p" || !strings.HasSuffix(c.Output, filepath.Join(f.runner.OutputDir, id)) {
		t.Fatalf("status %s, plan %v, pool %q, output %q", c.Status, c.Plan != nil, c.Pool, c.Output)
	}
	for _, stage := range []string{jobs.StageCompose, jobs.StageRecord, jobs.StageProvision, jobs.StageInstantiate, "total"} {
		if _, ok := c.Timings[stage]; !ok {
			t.Errorf("timings lack %s: %v", stage, c.Timings)
		}
	}
	conflicts, reservations, held := f.counts(t, id)
	// Running a finished composition's job again changes nothing.
	if err := f.runner.Run(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c2, _, _ := f.counts(t, id)
	if conflicts != len(c.Plan.Conflicts) || c2 != conflicts || reservations != 1 || held != 1 {
		t.Errorf("%d conflicts recorded (then %d; the plan has %d), %d reservations (%d held)", conflicts, c2, len(c.Plan.Conflicts), reservations, held)
	}
}

// An attempt stopped by a restart after the plan was recorded and the
// capacity reserved is picked up by the next: one plan, one reservation.
func TestRunResumesAfterAStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.submit(t, nil)
	ctx, stop := context.WithCancel(context.Background())
	f.blobs.err = func() error { stop(); return ctx.Err() } // the process stops while files are fetched
	err := f.runner.Run(ctx, id)
	if err == nil {
		t.Fatal("a stopped attempt returned nil: its job would not run again")
	}
	c, _ := f.st.GetComposition(context.Background(), id)
	if c.Status != domain.StatusProvisioned || c.Plan == nil {
		t.Fatalf("after the stop: %s, plan %v", c.Status, c.Plan != nil)
	}
	entries, _ := os.ReadDir(f.runner.OutputDir)
	if len(entries) != 0 {
		t.Errorf("a stopped instantiation left %d entries behind", len(entries))
	}
	f.blobs.err = nil
	if err := f.runner.Run(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c, _ = f.st.GetComposition(context.Background(), id)
	conflicts, reservations, held := f.counts(t, id)
	if c.Status != domain.StatusSucceeded || conflicts != len(c.Plan.Conflicts) || reservations != 1 || held != 1 {
		t.Errorf("%s; %d conflicts recorded for a plan of %d; %d reservations (%d held)", c.Status, conflicts, len(c.Plan.Conflicts), reservations, held)
	}
}

// What cannot be made fails with the reason and holds nothing.
func TestRunFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	infeasible := f.submit(t, func(s string) string { return strings.Replace(s, `"8 cores"`, `"500m"`, 1) })
	if err := f.runner.Run(ctx, infeasible); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.GetComposition(ctx, infeasible)
	if c.Status != domain.StatusFailed || c.Feasible == nil || *c.Feasible || !strings.Contains(c.Error, "cpu") {
		t.Errorf("over its limits: %s feasible %v %q", c.Status, c.Feasible, c.Error)
	}

	if err := f.st.UpsertPool(ctx, "p", domain.Resources{CPUMillicores: 100, MemoryBytes: 1 << 40, DiskBytes: 1 << 42}); err != nil {
		t.Fatal(err)
	}
	short := f.submit(t, nil)
	if err := f.runner.Run(ctx, short); err != nil {
		t.Fatal(err)
	}
	c, _ = f.st.GetComposition(ctx, short)
	if c.Status != domain.StatusFailed || !strings.Contains(c.Error, "too little free capacity") || !strings.Contains(c.Error, "cpu: short by") {
		t.Errorf("a pool too small: %s %q", c.Status, c.Error)
	}

	if err := f.st.UpsertPool(ctx, "p", domain.Resources{CPUMillicores: 100_000, MemoryBytes: 1 << 40, DiskBytes: 1 << 42}); err != nil {
		t.Fatal(err)
	}
	f.blobs.err = func() error { return domain.Errorf(domain.EUNAVAILABLE, "the agent is gone") }
	unfetched := f.submit(t, nil)
	if err := f.runner.Run(ctx, unfetched); err != nil {
		t.Fatal(err)
	}
	c, _ = f.st.GetComposition(ctx, unfetched)
	if c.Status != domain.StatusFailed || !strings.Contains(c.Error, "the agent is gone") {
		t.Errorf("a file that cannot be fetched: %s %q", c.Status, c.Error)
	}
	for _, id := range []string{infeasible, short, unfetched} {
		if _, _, held := f.counts(t, id); held != 0 {
			t.Errorf("failed composition %s holds %d reservations", id, held)
		}
	}
	if entries, _ := os.ReadDir(f.runner.OutputDir); len(entries) != 0 {
		t.Errorf("failed compositions left %d entries in the output directory", len(entries))
	}
}

// A composition cancelled while its attempt runs ends cancelled, holding
// nothing, and the attempt does not finish it.
func TestRunCancelledMeanwhile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.submit(t, nil)
	f.blobs.err = func() error {
		return f.st.SetCompositionStatus(context.Background(), id, store.StatusUpdate{Status: domain.StatusCancelled, Error: "cancelled"})
	}
	if err := f.runner.Run(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.GetComposition(context.Background(), id)
	if _, _, held := f.counts(t, id); c.Status != domain.StatusCancelled || held != 0 {
		t.Errorf("%s, %d reservations held; want cancelled, none", c.Status, held)
	}
	if entries, _ := os.ReadDir(f.runner.OutputDir); len(entries) != 0 {
		t.Errorf("a cancelled composition left %d entries in the output directory", len(entries))
	}
}

// A composition whose job River gave up on ends failed when it is read,
// holding nothing; one whose job is still queued is left alone.
func TestSettleDiscardedJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	q, err := jobs.New(f.st.Pool(), f.st, f.runner, jobs.Config{}) // submits only
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(seed, "manifest.templates.json"))
	m, _ := manifest.ParseBytes(raw)
	sub, err := q.Submit(ctx, store.Submission{Manifest: m, Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.GetComposition(ctx, sub.ID)
	j, err := q.JobOf(ctx, sub.ID)
	if err != nil || j.State != "available" {
		t.Fatalf("job %+v, %v", j, err)
	}
	if changed, err := q.Settle(ctx, c, j); changed || err != nil {
		t.Errorf("a queued job: changed %v, %v", changed, err)
	}
	if _, err := f.st.Pool().Exec(ctx, `UPDATE river_job SET state = 'discarded', attempt = 5, finalized_at = now() WHERE id = $1`, j.ID); err != nil {
		t.Fatal(err)
	}
	if j, err = q.JobOf(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if changed, err := q.Settle(ctx, c, j); !changed || err != nil {
		t.Fatalf("a discarded job: changed %v, %v", changed, err)
	}
	c, _ = f.st.GetComposition(ctx, sub.ID)
	if c.Status != domain.StatusFailed || !strings.Contains(c.Error, "given up after 5 attempts") {
		t.Errorf("%s %q", c.Status, c.Error)
	}
}
