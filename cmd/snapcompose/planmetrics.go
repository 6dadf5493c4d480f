package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
)

// planMetrics measures the plans the server makes: how long they take, the
// conflicts by kind and action, and the model's scores of its choices.
type planMetrics struct {
	duration  *prometheus.HistogramVec
	conflicts *prometheus.CounterVec
	scores    prometheus.Histogram
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
	}
}

func (p *planMetrics) register(s *httpapi.Server) error {
	return s.Register(p.duration, p.conflicts, p.scores)
}

// measured wraps a planner.
type measured struct {
	httpapi.Planner
	m *planMetrics
}

func (w measured) Plan(ctx context.Context, m *domain.Manifest) (*domain.Plan, error) {
	start := time.Now()
	plan, err := w.Planner.Plan(ctx, m)
	outcome := "ok"
	if err != nil {
		outcome = domain.ErrorCode(err)
	}
	w.m.duration.WithLabelValues(string(m.ConflictResolution), outcome).Observe(time.Since(start).Seconds())
	if plan != nil {
		for _, c := range plan.Conflicts {
			if c.Resolution == nil {
				continue
			}
			w.m.conflicts.WithLabelValues(string(c.Kind), string(c.Resolution.Action)).Inc()
			if c.Resolution.Score != nil {
				w.m.scores.Observe(*c.Resolution.Score)
			}
		}
	}
	return plan, err
}
