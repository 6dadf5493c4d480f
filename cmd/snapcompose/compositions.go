package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/jobs"
	"github.com/snapcompose/snapcompose/internal/store"
)

// idempotencyTTL is how long an Idempotency-Key is remembered.
const idempotencyTTL = 24 * time.Hour

// serverCompositions are the API's durable compositions: recorded in
// Postgres, worked by the job queue.
type serverCompositions struct {
	q  *jobs.Queue
	st *store.Store
}

var _ httpapi.Compositions = serverCompositions{}

func (s serverCompositions) Submit(ctx context.Context, m *domain.Manifest, raw []byte, key, digest string) (string, bool, error) {
	sub, err := s.q.Submit(ctx, store.Submission{Manifest: m, Raw: raw, Key: key, Digest: digest, TTL: idempotencyTTL})
	return sub.ID, sub.Replayed, err
}

func (s serverCompositions) Get(ctx context.Context, id string) (*httpapi.Composition, error) {
	c, err := s.st.GetComposition(ctx, id)
	if err != nil {
		return nil, err
	}
	j, jerr := s.q.JobOf(ctx, id)
	if jerr == nil {
		if changed, err := s.q.Settle(ctx, c, j); err != nil {
			return nil, err
		} else if changed {
			if c, err = s.st.GetComposition(ctx, id); err != nil {
				return nil, err
			}
		}
	}
	out := compositionView(c)
	switch {
	case jerr == nil:
		out.Job = &httpapi.Job{ID: j.ID, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, AttemptedBy: j.AttemptedBy, Errors: j.Errors}
	case domain.ErrorCode(jerr) != domain.ENOTFOUND:
		return nil, jerr
	}
	return out, nil
}

// compositionView shows a stored composition through the API.
func compositionView(c *store.Composition) *httpapi.Composition {
	out := &httpapi.Composition{
		ID: c.ID, Name: c.Name, Strategy: c.Strategy, Status: string(c.Status), Error: c.Error, Feasible: c.Feasible,
		Timings: c.Timings, Pool: c.Pool, Output: c.Output, ModelVersion: c.ModelVersion, Plan: c.Plan,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, FinishedAt: c.FinishedAt, ReleasedAt: c.ReleasedAt,
	}
	if out.Timings == nil {
		out.Timings = map[string]int64{}
	}
	return out
}

// List pages through the compositions, newest first, without plans.
func (s serverCompositions) List(ctx context.Context, f httpapi.CompositionFilter) (httpapi.CompositionPage, error) {
	page, err := s.st.ListCompositions(ctx, store.CompositionFilter{From: f.From, To: f.To, Strategy: f.Strategy,
		Status: domain.CompositionStatus(f.Status), Limit: f.Limit, Cursor: f.Cursor})
	if err != nil {
		return httpapi.CompositionPage{}, err
	}
	out := httpapi.CompositionPage{Compositions: []*httpapi.Composition{}, NextCursor: page.NextCursor}
	for i := range page.Compositions {
		out.Compositions = append(out.Compositions, compositionView(&page.Compositions[i]))
	}
	return out, nil
}

// Release tears a finished composition down: its capacity goes back to the
// pool and its directory is removed (when it is on this machine; elsewhere
// the record says released and the directory stays for its host's
// operators). A composition still running is cancelled instead.
func (s serverCompositions) Release(ctx context.Context, id string) (bool, error) {
	c, err := s.st.GetComposition(ctx, id)
	if err != nil {
		return false, err
	}
	if !c.Status.Final() {
		return true, s.q.Cancel(ctx, id)
	}
	if err := s.st.ReleaseComposition(ctx, id); err != nil {
		return false, err
	}
	if _, dir, here := jobs.LocalDir(c.Output); here {
		if err := os.RemoveAll(dir); err != nil {
			return false, err
		}
	}
	return false, nil
}

func (s serverCompositions) Cancel(ctx context.Context, id string) error { return s.q.Cancel(ctx, id) }

// Archive tars the composition's directory when it lies on this machine.
func (s serverCompositions) Archive(ctx context.Context, id string, w io.Writer) error {
	c, err := s.st.GetComposition(ctx, id)
	if err != nil {
		return err
	}
	host, dir, here := jobs.LocalDir(c.Output)
	if !here {
		return domain.Errorf(domain.ENOTFOUND, "composition %s was materialised on %s at %s; ask a server there (or give the servers a shared --output-dir)", id, host, dir)
	}
	if _, err := os.Stat(dir); err != nil {
		return domain.Errorf(domain.ENOTFOUND, "composition %s's environment is no longer at %s", id, dir)
	}
	return instantiate.Archive(dir, id, w)
}

// recordFeatures fills a plan record's feature vectors from the sources'
// track record, for retraining: every candidate of every decision, under
// any strategy.
func recordFeatures(history func(context.Context) (map[domain.SourceRef]features.SourceHistory, error)) func(context.Context, *domain.Manifest, *domain.PlanRecord) error {
	return func(ctx context.Context, m *domain.Manifest, rec *domain.PlanRecord) error {
		h, err := history(ctx)
		if err != nil {
			return err
		}
		env := features.Env{History: h, Now: time.Now()}
		rec.Features = make([][][]float32, len(rec.Decisions))
		for i := range rec.Decisions {
			d := &rec.Decisions[i]
			rec.Features[i] = make([][]float32, len(d.Candidates))
			for j := range d.Candidates {
				rec.Features[i][j] = features.Extract(m, d, j, env)
			}
		}
		rec.FeatureSchema = features.SchemaHash()
		return nil
	}
}
