package store

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// latestOutcome selects the latest outcome of composition c, for a
// lateral join.
const latestOutcome = `SELECT id, verdict FROM composition_outcomes
	WHERE composition_id = c.id ORDER BY reported_at DESC, id DESC LIMIT 1`

// TrainingRow is one chosen candidate with its feature vector and the
// outcome of its composition: a row the trainer learns from.
type TrainingRow struct {
	CompositionID   string
	CompositionName string
	CreatedAt       time.Time
	Conflict        int // the conflict's ordinal in its composition
	Candidate       int // the chosen candidate's ordinal
	Kind            domain.ClaimKind
	Key             string
	Action          domain.Action
	Features        []float32
	Claimants       []domain.Claimant
	// Healthy is whether the composition's latest outcome says healthy.
	Healthy bool
}

// TrainingRows returns the chosen candidates recorded with feature schema
// schema in compositions created in [from, to) that have an outcome, with
// each composition's latest verdict, ordered by composition name, id and
// conflict. A zero from or to leaves that end open. A degraded verdict
// counts as not healthy.
func (s *Store) TrainingRows(ctx context.Context, schema string, from, to time.Time) ([]TrainingRow, error) {
	const op = "reading training rows"
	rows, err := s.pool.Query(ctx, `
		SELECT c.id::text, c.name, c.created_at, k.ordinal, d.ordinal, k.kind, k.key, d.action, d.features, k.claimants, o.verdict = 'healthy'
		FROM compositions c
		JOIN LATERAL (`+latestOutcome+`) o ON true
		JOIN conflicts k ON k.composition_id = c.id
		JOIN candidates d ON d.conflict_id = k.id AND d.chosen
		WHERE d.feature_schema = $1 AND d.features IS NOT NULL
		  AND ($2::timestamptz IS NULL OR c.created_at >= $2)
		  AND ($3::timestamptz IS NULL OR c.created_at < $3)
		ORDER BY c.name, c.id, k.ordinal`, schema, nullTime(from), nullTime(to))
	if err != nil {
		return nil, constraintError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TrainingRow, error) {
		var t TrainingRow
		err := r.Scan(&t.CompositionID, &t.CompositionName, &t.CreatedAt, &t.Conflict, &t.Candidate, &t.Kind, &t.Key, &t.Action, &t.Features, &t.Claimants, &t.Healthy)
		return t, err
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}

// SourceHistory returns, per source ref, how many compositions it took part
// in that have an outcome, and how many of those were healthy by their
// latest verdict: the track record the features read.
func (s *Store) SourceHistory(ctx context.Context) (map[domain.SourceRef][2]int, error) {
	const op = "reading the sources' history"
	rows, err := s.pool.Query(ctx, `
		SELECT cs.ref, count(*), count(*) FILTER (WHERE o.verdict = 'healthy')
		FROM composition_sources cs
		JOIN compositions c ON c.id = cs.composition_id
		JOIN LATERAL (`+latestOutcome+`) o ON true
		GROUP BY cs.ref`)
	if err != nil {
		return nil, constraintError(op, err)
	}
	out := map[domain.SourceRef][2]int{}
	var ref string
	var n, healthy int
	_, err = pgx.ForEachRow(rows, []any{&ref, &n, &healthy}, func() error {
		out[domain.SourceRef(ref)] = [2]int{n, healthy}
		return nil
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}

// CompositionResult is a composition's sources and latest verdict.
type CompositionResult struct {
	Name    string
	Sources []domain.SourceRef // in manifest order
	Healthy bool
}

// CompositionResults returns every composition that has an outcome, ordered
// by name and id, with its sources and whether its latest verdict is
// healthy: enough to replay the sources' track record in order.
func (s *Store) CompositionResults(ctx context.Context) ([]CompositionResult, error) {
	const op = "reading composition results"
	rows, err := s.pool.Query(ctx, `
		SELECT c.name, array_agg(cs.ref ORDER BY cs.position), o.verdict = 'healthy'
		FROM compositions c
		JOIN LATERAL (`+latestOutcome+`) o ON true
		JOIN composition_sources cs ON cs.composition_id = c.id
		GROUP BY c.id, c.name, o.verdict
		ORDER BY c.name, c.id`)
	if err != nil {
		return nil, constraintError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CompositionResult, error) {
		var c CompositionResult
		var refs []string
		err := r.Scan(&c.Name, &refs, &c.Healthy)
		for _, ref := range refs {
			c.Sources = append(c.Sources, domain.SourceRef(ref))
		}
		return c, err
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}

// ServiceHealth is one service's health in a composition's latest outcome.
type ServiceHealth struct {
	Service string
	Source  domain.SourceRef
	Healthy bool
	// Reads are the keys the service reads, as its plan recorded them.
	Reads []string
}

// ServiceHealth returns, per composition id, the services its latest
// outcome reports on, with the source each was allocated from, in service
// order.
func (s *Store) ServiceHealth(ctx context.Context) (map[string][]ServiceHealth, error) {
	const op = "reading service health"
	rows, err := s.pool.Query(ctx, `
		SELECT so.composition_id::text, so.service, a.source_ref, so.healthy,
		       coalesce((SELECT array_agg(r ORDER BY r) FROM jsonb_array_elements(c.plan->'services') ps,
		                 jsonb_array_elements_text(coalesce(ps->'reads', '[]'::jsonb)) r
		                 WHERE ps->>'name' = so.service AND ps->>'source' = a.source_ref), '{}')
		FROM compositions c
		JOIN LATERAL (`+latestOutcome+`) o ON true
		JOIN service_outcomes so ON so.outcome_id = o.id
		JOIN allocations a ON a.composition_id = so.composition_id AND a.service = so.service
		ORDER BY so.composition_id, so.service`)
	if err != nil {
		return nil, constraintError(op, err)
	}
	out := map[string][]ServiceHealth{}
	var id, svc, ref string
	var healthy bool
	var reads []string
	_, err = pgx.ForEachRow(rows, []any{&id, &svc, &ref, &healthy, &reads}, func() error {
		out[id] = append(out[id], ServiceHealth{Service: svc, Source: domain.SourceRef(ref), Healthy: healthy, Reads: slices.Clone(reads)})
		return nil
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}
