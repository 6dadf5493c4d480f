package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// ConflictRecord is a recorded conflict, how it was settled, and every
// candidate the resolver weighed.
type ConflictRecord struct {
	ID      int64
	Ordinal int // in the order conflicts were settled
	// Conflict carries the resolution carried out; its Alternatives are
	// not kept (Candidates has them all).
	Conflict   domain.Conflict
	Candidates []CandidateRecord
}

// CandidateRecord is one candidate resolution as the resolver saw it.
type CandidateRecord struct {
	Ordinal       int
	Action        domain.Action
	Winner        *domain.SourceRef
	Detail        string
	Rejected      string
	Features      []float32
	FeatureSchema string
	Score         *float64
	Chosen        bool
}

// Conflicts returns the conflicts of composition id in the order they were
// settled, each with its candidates. It returns EINVALID when id is not a
// UUID; a composition without a recorded plan has none.
func (s *Store) Conflicts(ctx context.Context, id string) ([]ConflictRecord, error) {
	op := "reading the conflicts of composition " + id
	if err := checkID(id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, ordinal, kind, key, claimants, action, winner, detail, score, ambiguous, changes
		FROM conflicts WHERE composition_id = $1 ORDER BY ordinal`, id)
	if err != nil {
		return nil, constraintError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ConflictRecord, error) {
		var c ConflictRecord
		res := new(domain.Resolution)
		c.Conflict.Resolution = res
		err := r.Scan(&c.ID, &c.Ordinal, &c.Conflict.Kind, &c.Conflict.Key, &c.Conflict.Claimants,
			&res.Action, &res.Winner, &res.Detail, &res.Score, &res.Ambiguous, &res.Changes)
		if len(res.Changes) == 0 {
			res.Changes = nil
		}
		return c, err
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	index := map[int64]int{}
	for i, c := range out {
		index[c.ID] = i
	}
	rows, err = s.pool.Query(ctx, `
		SELECT c.conflict_id, c.ordinal, c.action, c.winner, c.detail, coalesce(c.rejected, ''), c.features,
			coalesce(c.feature_schema, ''), c.score, c.chosen
		FROM candidates c JOIN conflicts cf ON cf.id = c.conflict_id
		WHERE cf.composition_id = $1 ORDER BY c.conflict_id, c.ordinal`, id)
	if err != nil {
		return nil, constraintError(op, err)
	}
	var conflictID int64
	var c CandidateRecord
	_, err = pgx.ForEachRow(rows, []any{&conflictID, &c.Ordinal, &c.Action, &c.Winner, &c.Detail, &c.Rejected, &c.Features,
		&c.FeatureSchema, &c.Score, &c.Chosen}, func() error {
		rec := &out[index[conflictID]]
		rec.Candidates = append(rec.Candidates, c)
		c = CandidateRecord{}
		return nil
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}

// Allocation is what one service of a composition asked for, accepts at
// least, and got.
type Allocation struct {
	Service   string
	Source    domain.SourceRef
	Allocated domain.Resources
	Requested domain.Resources
	Minimum   domain.Resources
	Optional  bool
}

// Allocations returns the allocation of every service of composition id, by
// service name. It returns EINVALID when id is not a UUID; a composition
// without a recorded plan has none.
func (s *Store) Allocations(ctx context.Context, id string) ([]Allocation, error) {
	op := "reading the allocations of composition " + id
	if err := checkID(id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT service, source_ref, cpu_millicores, memory_bytes, disk_bytes,
			requested_cpu_millicores, requested_memory_bytes, requested_disk_bytes,
			minimum_cpu_millicores, minimum_memory_bytes, minimum_disk_bytes, optional
		FROM allocations WHERE composition_id = $1 ORDER BY service`, id)
	if err != nil {
		return nil, constraintError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Allocation, error) {
		var a Allocation
		return a, r.Scan(&a.Service, &a.Source,
			&a.Allocated.CPUMillicores, &a.Allocated.MemoryBytes, &a.Allocated.DiskBytes,
			&a.Requested.CPUMillicores, &a.Requested.MemoryBytes, &a.Requested.DiskBytes,
			&a.Minimum.CPUMillicores, &a.Minimum.MemoryBytes, &a.Minimum.DiskBytes, &a.Optional)
	})
	if err != nil {
		return nil, constraintError(op, err)
	}
	return out, nil
}
