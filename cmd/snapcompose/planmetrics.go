package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/jobs"
)

// planMetrics measures the plans the server makes: how long they take, the
// conflicts by kind and action, and the model's scores of its choices.
type planMetrics struct {
	duration  *prometheus.HistogramVec
	conflicts *prometheus.CounterVec
	scores    prometheus.Histogram
	stages    *prometheus.HistogramVec
	lp        *prometheus.HistogramVec
}

func newPlanMetrics() *planMetrics {
	return &planMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snapcompose_plan_duration_seconds",
			Help:    "Time to plan a composition (retrieve, settle, allocate), by strategy and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"strategy", "outcome"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snapcompose_conflicts_total",
			Help: "Conflicts settled, by kind and action.",
		}, []string{"kind", "action"}),
		scores: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "snapcompose_agent_chosen_score",
			Help:    "AI_AGENT's predicted health of the candidates it chose.",
			Buckets: prometheus.LinearBuckets(0.1, 0.1, 9),
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snapcompose_compose_stage_duration_seconds",
			Help:    "Time a durable composition spent in each stage: compose, record, provision, instantiate.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"stage"}),
		lp: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snapcompose_allocator_duration_seconds",
			Help:    "Time the allocator (the LP: knapsack, decomposition or simplex) took per run, by method.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18),
		}, []string{"method"}),
	}
}

// allocation observes one run of the allocator.
func (p *planMetrics) allocation(method string, d time.Duration) {
	p.lp.WithLabelValues(method).Observe(d.Seconds())
}

// stage observes how long a composition's stage took.
func (p *planMetrics) stage(name string, d time.Duration) {
	p.stages.WithLabelValues(name).Observe(d.Seconds())
}

func (p *planMetrics) register(s *httpapi.Server) error {
	return s.Register(p.duration, p.conflicts, p.scores, p.stages, p.lp)
}

// measured wraps a planner.
type measured struct {
	httpapi.Planner
	m *planMetrics
}

func (w measured) Plan(ctx context.Context, m *domain.Manifest) (*domain.Plan, error) {
	start := time.Now()
	plan, err := w.Planner.Plan(ctx, m)
	w.m.observe(m, plan, err, start)
	return plan, err
}

// measuredComposer wraps the composer of durable compositions.
type measuredComposer struct {
	jobs.Composer
	m *planMetrics
}

func (w measuredComposer) Compose(ctx context.Context, m *domain.Manifest) (*domain.PlanRecord, error) {
	start := time.Now()
	rec, err := w.Composer.Compose(ctx, m)
	var plan *domain.Plan
	if rec != nil {
		plan = rec.Plan
	}
	w.m.observe(m, plan, err, start)
	return rec, err
}

// observe counts a plan made since start.
func (p *planMetrics) observe(m *domain.Manifest, plan *domain.Plan, err error, start time.Time) {
	outcome := "ok"
	if err != nil {
		outcome = domain.ErrorCode(err)
	}
	p.duration.WithLabelValues(string(m.ConflictResolution), outcome).Observe(time.Since(start).Seconds())
	if plan == nil {
		return
	}
	for _, c := range plan.Conflicts {
		if c.Resolution == nil {
			continue
		}
		p.conflicts.WithLabelValues(string(c.Kind), string(c.Resolution.Action)).Inc()
		if c.Resolution.Score != nil {
			p.scores.Observe(*c.Resolution.Score)
		}
	}
}
