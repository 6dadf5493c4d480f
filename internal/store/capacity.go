package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// UpsertPool creates capacity pool name, or changes its capacity. Shrinking
// a pool below what its unreleased reservations hold is refused, so a pool
// is never over-committed. It returns EINVALID when a capacity is not
// positive (the message names the constraint) and EINFEASIBLE, naming each
// resource that would be over-committed, when the pool would be.
func (s *Store) UpsertPool(ctx context.Context, name string, capacity domain.Resources) error {
	op := "storing capacity pool " + name
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO capacity_pools (name, cpu_millicores, memory_bytes, disk_bytes) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET cpu_millicores = EXCLUDED.cpu_millicores, memory_bytes = EXCLUDED.memory_bytes,
				disk_bytes = EXCLUDED.disk_bytes, updated_at = now()`,
			name, capacity.CPUMillicores, capacity.MemoryBytes, capacity.DiskBytes)
		if err != nil {
			return err
		}
		// The upsert holds the pool row's lock, so no reservation slips in
		// between it and this check.
		reserved, err := reservedIn(ctx, tx, name)
		if err != nil {
			return err
		}
		if problems := shortfalls(domain.Resources{}, reserved, capacity); len(problems) > 0 {
			return &domain.Error{Code: domain.EINFEASIBLE, Message: fmt.Sprintf("%s: its reservations hold more than the new capacity", op), Problems: problems}
		}
		return nil
	})
	if err != nil {
		return constraintError(op, err)
	}
	return nil
}

// Reservation is capacity held for a composition.
type Reservation struct {
	ID            int64
	Pool          string
	CompositionID string
	Resources     domain.Resources
	CreatedAt     time.Time
	ReleasedAt    *time.Time
}

// Reserve holds r in pool for composition compositionID. Reservations on
// one pool are made one at a time (the pool row is locked while the held
// capacity is summed), so they never over-commit it, however many run at
// once.
//
// It returns EINFEASIBLE with one problem per resource that is short, saying
// by how much, when r does not fit in what is free; ENOTFOUND when the pool
// or the composition does not exist; ECONFLICT when the composition already
// holds a reservation in the pool; and EINVALID for a negative amount.
func (s *Store) Reserve(ctx context.Context, pool, compositionID string, r domain.Resources) (Reservation, error) {
	op := fmt.Sprintf("reserving capacity in pool %s for composition %s", pool, compositionID)
	if err := checkID(compositionID); err != nil {
		return Reservation{}, err
	}
	var out Reservation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var capacity domain.Resources
		err := tx.QueryRow(ctx, `SELECT cpu_millicores, memory_bytes, disk_bytes FROM capacity_pools WHERE name = $1 FOR UPDATE`, pool).
			Scan(&capacity.CPUMillicores, &capacity.MemoryBytes, &capacity.DiskBytes)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "%s: no such pool", op)
		}
		if err != nil {
			return err
		}
		reserved, err := reservedIn(ctx, tx, pool)
		if err != nil {
			return err
		}
		if problems := shortfalls(r, reserved, capacity); len(problems) > 0 {
			return &domain.Error{Code: domain.EINFEASIBLE, Message: fmt.Sprintf("%s: the pool has too little free capacity", op), Problems: problems}
		}
		out = Reservation{Pool: pool, CompositionID: compositionID, Resources: r}
		return tx.QueryRow(ctx, `
			INSERT INTO reservations (pool, composition_id, cpu_millicores, memory_bytes, disk_bytes, created_at)
			VALUES ($1, $2, $3, $4, $5, clock_timestamp()) RETURNING id, created_at`,
			pool, compositionID, r.CPUMillicores, r.MemoryBytes, r.DiskBytes).Scan(&out.ID, &out.CreatedAt)
	})
	if err != nil {
		return Reservation{}, constraintError(op, err)
	}
	return out, nil
}

// reservedIn sums what the unreleased reservations of pool hold.
func reservedIn(ctx context.Context, tx pgx.Tx, pool string) (domain.Resources, error) {
	var r domain.Resources
	err := tx.QueryRow(ctx, `
		SELECT coalesce(sum(cpu_millicores), 0)::bigint, coalesce(sum(memory_bytes), 0)::bigint, coalesce(sum(disk_bytes), 0)::bigint
		FROM reservations WHERE pool = $1 AND released_at IS NULL`, pool).Scan(&r.CPUMillicores, &r.MemoryBytes, &r.DiskBytes)
	return r, err
}

// shortfalls lists each resource for which want does not fit beside
// reserved within capacity, saying by how much.
func shortfalls(want, reserved, capacity domain.Resources) []domain.Problem {
	var problems []domain.Problem
	check := func(name string, want, reserved, capacity int64, format func(int64) string) {
		free := capacity - reserved
		if want > free {
			problems = append(problems, domain.Problem{Where: name, Message: fmt.Sprintf("short by %s: asked for %s, %s free (%s of %s reserved)",
				format(want-free), format(want), format(max(free, 0)), format(reserved), format(capacity))})
		}
	}
	check("cpu", want.CPUMillicores, reserved.CPUMillicores, capacity.CPUMillicores, quantity.FormatCPU)
	check("memory", want.MemoryBytes, reserved.MemoryBytes, capacity.MemoryBytes, quantity.FormatBytes)
	check("disk", want.DiskBytes, reserved.DiskBytes, capacity.DiskBytes, quantity.FormatBytes)
	return problems
}

// Release frees every capacity composition compositionID holds, in every
// pool, and returns how many reservations it released. Releasing again
// releases nothing and is not an error. It returns EINVALID when the id is
// not a UUID.
func (s *Store) Release(ctx context.Context, compositionID string) (int, error) {
	if err := checkID(compositionID); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE reservations SET released_at = clock_timestamp() WHERE composition_id = $1 AND released_at IS NULL`, compositionID)
	if err != nil {
		return 0, constraintError("releasing the capacity of composition "+compositionID, err)
	}
	return int(tag.RowsAffected()), nil
}

// PoolUsage is a pool's capacity and what its unreleased reservations hold.
type PoolUsage struct {
	Name         string
	Capacity     domain.Resources
	Reserved     domain.Resources
	Free         domain.Resources
	Reservations int // unreleased
}

// PoolUsage returns how much of pool is reserved. It returns ENOTFOUND when
// there is no such pool.
func (s *Store) PoolUsage(ctx context.Context, pool string) (PoolUsage, error) {
	u := PoolUsage{Name: pool}
	err := s.pool.QueryRow(ctx, `
		SELECT p.cpu_millicores, p.memory_bytes, p.disk_bytes,
			coalesce(sum(r.cpu_millicores), 0)::bigint, coalesce(sum(r.memory_bytes), 0)::bigint, coalesce(sum(r.disk_bytes), 0)::bigint,
			count(r.id)
		FROM capacity_pools p LEFT JOIN reservations r ON r.pool = p.name AND r.released_at IS NULL
		WHERE p.name = $1
		GROUP BY p.name`, pool).Scan(&u.Capacity.CPUMillicores, &u.Capacity.MemoryBytes, &u.Capacity.DiskBytes,
		&u.Reserved.CPUMillicores, &u.Reserved.MemoryBytes, &u.Reserved.DiskBytes, &u.Reservations)
	if errors.Is(err, pgx.ErrNoRows) {
		return PoolUsage{}, domain.Errorf(domain.ENOTFOUND, "capacity pool %q does not exist", pool)
	}
	if err != nil {
		return PoolUsage{}, constraintError("reading capacity pool "+pool, err)
	}
	u.Free = domain.Resources{
		CPUMillicores: u.Capacity.CPUMillicores - u.Reserved.CPUMillicores,
		MemoryBytes:   u.Capacity.MemoryBytes - u.Reserved.MemoryBytes,
		DiskBytes:     u.Capacity.DiskBytes - u.Reserved.DiskBytes,
	}
	return u, nil
}
