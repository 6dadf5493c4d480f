package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Verdicts of a composition's outcome.
const (
	VerdictHealthy  = "healthy"
	VerdictDegraded = "degraded"
	VerdictFailed   = "failed"
)

// Outcome is one report on how a composed environment is doing.
type Outcome struct {
	ID            int64
	CompositionID string
	Verdict       string // VerdictHealthy, VerdictDegraded or VerdictFailed
	ReportedAt    time.Time
	Reporter      string // who reported: the monitor, a user, a CI job
	Metrics       map[string]float64
	Services      []ServiceOutcome
}

// ServiceOutcome is how one service of the composition was doing.
type ServiceOutcome struct {
	Service    string
	Healthy    bool
	LatencyMS  *float64
	ErrorRate  *float64 // 0..1
	Metrics    map[string]float64
	ObservedAt time.Time
}

// RecordOutcome keeps a report on composition o.CompositionID and the
// outcome of each of its services, in one transaction, and returns the
// report's id. A zero ReportedAt or ObservedAt means now. It returns
// ENOTFOUND when the composition, or a service its plan did not allocate,
// does not exist, and EINVALID for an unknown verdict or a metric out of
// range (the message names the constraint).
func (s *Store) RecordOutcome(ctx context.Context, o Outcome) (int64, error) {
	op := "recording an outcome of composition " + o.CompositionID
	if err := checkID(o.CompositionID); err != nil {
		return 0, err
	}
	now := time.Now()
	if o.ReportedAt.IsZero() {
		o.ReportedAt = now
	}
	metrics, err := metricsJSON(o.Metrics)
	if err != nil {
		return 0, domain.Errorf(domain.EINVALID, "%s: %v", op, err)
	}
	serviceMetrics := make([]json.RawMessage, len(o.Services))
	for i, so := range o.Services {
		if serviceMetrics[i], err = metricsJSON(so.Metrics); err != nil {
			return 0, domain.Errorf(domain.EINVALID, "%s: service %s: %v", op, so.Service, err)
		}
	}
	var id int64
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO composition_outcomes (composition_id, verdict, reported_at, reporter, metrics)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			o.CompositionID, o.Verdict, o.ReportedAt, o.Reporter, metrics).Scan(&id)
		if err != nil {
			return err
		}
		return copyRows(ctx, tx, "service_outcomes",
			[]string{"outcome_id", "composition_id", "service", "healthy", "latency_ms", "error_rate", "metrics", "observed_at"},
			len(o.Services), func(i int) []any {
				so := o.Services[i]
				at := so.ObservedAt
				if at.IsZero() {
					at = now
				}
				return []any{id, o.CompositionID, so.Service, so.Healthy, so.LatencyMS, so.ErrorRate, serviceMetrics[i], at}
			})
	})
	if err != nil {
		return 0, constraintError(op, err)
	}
	return id, nil
}

func metricsJSON(m map[string]float64) (json.RawMessage, error) {
	if m == nil {
		return json.RawMessage("{}"), nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		// Only NaN and infinities fail to encode.
		return nil, errors.New("metrics must be finite numbers")
	}
	return b, nil
}

// Outcomes returns every report on composition id, oldest first, each with
// its services' outcomes by name. It returns EINVALID when id is not a UUID;
// a composition without reports has none.
func (s *Store) Outcomes(ctx context.Context, id string) ([]Outcome, error) {
	op := "reading the outcomes of composition " + id
	if err := checkID(id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, composition_id::text, verdict, reported_at, reporter, metrics
		FROM composition_outcomes WHERE composition_id = $1 ORDER BY reported_at, id`, id)
	if err != nil {
		return nil, constraintError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Outcome, error) {
		var o Outcome
		return o, r.Scan(&o.ID, &o.CompositionID, &o.Verdict, &o.ReportedAt, &o.Reporter, &o.Metrics)
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	index := map[int64]int{}
	for i, o := range out {
		index[o.ID] = i
	}
	rows, err = s.pool.Query(ctx, `
		SELECT outcome_id, service, healthy, latency_ms, error_rate, metrics, observed_at
		FROM service_outcomes WHERE composition_id = $1 ORDER BY outcome_id, service`, id)
	if err != nil {
		return nil, constraintError(op, err)
	}
	var outcomeID int64
	var so ServiceOutcome
	_, err = pgx.ForEachRow(rows, []any{&outcomeID, &so.Service, &so.Healthy, &so.LatencyMS, &so.ErrorRate, &so.Metrics, &so.ObservedAt}, func() error {
		o := &out[index[outcomeID]]
		o.Services = append(o.Services, so)
		so = ServiceOutcome{}
		return nil
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}
