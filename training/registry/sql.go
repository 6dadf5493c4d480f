package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/store"
)

// The few reads the registry needs that package store does not offer (yet);
// each is one query on the store's pool, over tables the store owns.

// simulatedCount returns how many compositions of the history are named
// like seed's simulated ones.
func simulatedCount(ctx context.Context, st *store.Store, seed uint64) (int, error) {
	var n int
	err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM compositions WHERE starts_with(name, $1)`, simPrefix(seed)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting seed %d's simulated compositions: %w", seed, err)
	}
	return n, nil
}

// createdRange returns when the first and the last composition that gives
// training rows of schema in [from, to) were created.
func createdRange(ctx context.Context, st *store.Store, schema string, from, to time.Time) (first, last time.Time, err error) {
	var lo, hi *time.Time
	err = st.Pool().QueryRow(ctx, `
		SELECT min(c.created_at), max(c.created_at) FROM compositions c
		WHERE EXISTS (SELECT 1 FROM composition_outcomes o WHERE o.composition_id = c.id)
		  AND EXISTS (SELECT 1 FROM conflicts k JOIN candidates d ON d.conflict_id = k.id AND d.chosen
		              WHERE k.composition_id = c.id AND d.feature_schema = $1 AND d.features IS NOT NULL)
		  AND ($2::timestamptz IS NULL OR c.created_at >= $2)
		  AND ($3::timestamptz IS NULL OR c.created_at < $3)`, schema, nullTime(from), nullTime(to)).Scan(&lo, &hi)
	if err != nil {
		return first, last, fmt.Errorf("reading the training data's time range: %w", err)
	}
	if lo != nil {
		first = lo.UTC()
	}
	if hi != nil {
		last = hi.UTC()
	}
	return first, last, nil
}

// namesAfter returns the composition names all of whose compositions were
// created after t: compositions a model registered at t cannot have seen.
func namesAfter(ctx context.Context, st *store.Store, t time.Time) (map[string]bool, error) {
	rows, err := st.Pool().Query(ctx, `SELECT name FROM compositions GROUP BY name HAVING min(created_at) > $1`, t)
	if err != nil {
		return nil, fmt.Errorf("reading the compositions newer than the champion: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading the compositions newer than the champion: %w", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// CompositionsSince returns how many compositions with an outcome were
// created at or after t: whether there is anything new to retrain on.
func CompositionsSince(ctx context.Context, st *store.Store, t time.Time) (int, error) {
	var n int
	err := st.Pool().QueryRow(ctx, `
		SELECT count(*) FROM compositions c
		WHERE c.created_at >= $1 AND EXISTS (SELECT 1 FROM composition_outcomes o WHERE o.composition_id = c.id)`, t).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting new compositions: %w", err)
	}
	return n, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
