package main

import (
	"context"
	"io"
	"os"
	"strings"
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
	out := &httpapi.Composition{
		ID: c.ID, Name: c.Name, Strategy: c.Strategy, Status: string(c.Status), Error: c.Error, Feasible: c.Feasible,
		Timings: c.Timings, Pool: c.Pool, Output: c.Output, ModelVersion: c.ModelVersion, Plan: c.Plan,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, FinishedAt: c.FinishedAt,
	}
	if out.Timings == nil {
		out.Timings = map[string]int64{}
	}
	j, err := s.q.JobOf(ctx, id)
	switch {
	case err == nil:
		out.Job = &httpapi.Job{ID: j.ID, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, AttemptedBy: j.AttemptedBy, Errors: j.Errors}
	case domain.ErrorCode(err) != domain.ENOTFOUND:
		return nil, err
	}
	return out, nil
}

func (s serverCompositions) Cancel(ctx context.Context, id string) error { return s.q.Cancel(ctx, id) }

// Archive tars the composition's directory when it lies on this machine.
func (s serverCompositions) Archive(ctx context.Context, id string, w io.Writer) error {
	c, err := s.st.GetComposition(ctx, id)
	if err != nil {
		return err
	}
	host, dir, _ := strings.Cut(c.Output, ":")
	here, _ := os.Hostname()
	if host != here {
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
