package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/usage"
)

// DefaultUsageBatch is how many samples ImportUsage writes per transaction:
// large enough that COPY dominates the per-batch statements, small enough
// that a batch takes well under a megabyte of memory.
const DefaultUsageBatch = 5000

// UsageImportOptions tunes ImportUsage. The zero value is ready to use.
type UsageImportOptions struct {
	// BatchSize is the number of samples per transaction;
	// DefaultUsageBatch when 0.
	BatchSize int
	// OnBatch, when set, is called after each batch is committed with the
	// counts of that batch alone.
	OnBatch func(UsageImportResult)
}

// UsageImportResult counts what an import wrote.
type UsageImportResult struct {
	SeriesID int64
	Inserted int64 // new samples
	Skipped  int64 // samples the series already had at their timestamp
	Batches  int   // transactions committed
}

// ImportUsage stores samples as the usage series series names by (Origin,
// Host, Service), creating the series or updating its interval and
// composition, and returns how many samples were new.
//
// Samples are written in batches, each in its own transaction: COPY into a
// temporary table, then INSERT ... ON CONFLICT DO NOTHING into usage_samples,
// so re-importing samples already stored inserts nothing, and a failure
// (a constraint violation, a cancelled ctx, a lost connection) loses only
// the batch in flight: the table only ever holds whole batches. On error the
// result still counts the batches committed before it.
//
// It returns EINVALID for a series without host, service or interval, with
// an unknown origin or a malformed composition id, or when a sample breaks a
// constraint (a negative value), and ENOTFOUND when CompositionID names no
// composition.
func (s *Store) ImportUsage(ctx context.Context, series usage.Series, samples iter.Seq[usage.Sample], opts UsageImportOptions) (UsageImportResult, error) {
	var res UsageImportResult
	if err := validateSeries(series); err != nil {
		return res, err
	}
	op := fmt.Sprintf("importing usage of %s/%s/%s", series.Origin, series.Host, series.Service)
	id, err := s.upsertUsageSeries(ctx, series)
	if err != nil {
		return res, constraintError(op, err)
	}
	res.SeriesID = id
	size := opts.BatchSize
	if size <= 0 {
		size = DefaultUsageBatch
	}
	batch := make([]usage.Sample, 0, size)
	flush := func() error {
		inserted, err := s.insertUsageBatch(ctx, id, batch)
		if err != nil {
			first, last := batch[0].Time.Format(time.RFC3339), batch[len(batch)-1].Time.Format(time.RFC3339)
			return constraintError(fmt.Sprintf("%s (batch of %d samples from %s to %s)", op, len(batch), first, last), err)
		}
		b := UsageImportResult{SeriesID: id, Inserted: inserted, Skipped: int64(len(batch)) - inserted, Batches: 1}
		res.Inserted += b.Inserted
		res.Skipped += b.Skipped
		res.Batches++
		if opts.OnBatch != nil {
			opts.OnBatch(b)
		}
		batch = batch[:0]
		return nil
	}
	for smp := range samples {
		batch = append(batch, smp)
		if len(batch) == size {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return res, err
		}
	}
	return res, nil
}

func validateSeries(series usage.Series) error {
	var problems []domain.Problem
	if !series.Origin.Valid() {
		problems = append(problems, domain.Problem{Where: "origin", Message: fmt.Sprintf("%q is not one of bitbrains, snapagent, report", series.Origin)})
	}
	if series.Host == "" {
		problems = append(problems, domain.Problem{Where: "host", Message: "must not be empty"})
	}
	if series.Service == "" {
		problems = append(problems, domain.Problem{Where: "service", Message: "must not be empty"})
	}
	if series.CompositionID != "" && !uuidPattern.MatchString(series.CompositionID) {
		problems = append(problems, domain.Problem{Where: "composition_id", Message: fmt.Sprintf("%q is not a UUID", series.CompositionID)})
	}
	if series.IntervalSeconds <= 0 {
		problems = append(problems, domain.Problem{Where: "interval_seconds", Message: "must be positive"})
	}
	if len(problems) > 0 {
		return domain.Invalid("invalid usage series", problems)
	}
	return nil
}

// upsertUsageSeries returns the id of the series, creating it if needed.
// An existing series keeps its composition unless a new one is given.
func (s *Store) upsertUsageSeries(ctx context.Context, series usage.Series) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO usage_series (origin, host, service, composition_id, interval_seconds)
		VALUES ($1, $2, $3, NULLIF($4, '')::uuid, $5)
		ON CONFLICT ON CONSTRAINT usage_series_key DO UPDATE
		SET composition_id = COALESCE(EXCLUDED.composition_id, usage_series.composition_id),
		    interval_seconds = EXCLUDED.interval_seconds
		RETURNING id`,
		string(series.Origin), series.Host, series.Service, series.CompositionID, series.IntervalSeconds,
	).Scan(&id)
	return id, err
}

// usageColumns are the columns of usage_samples a batch carries, in order.
var usageColumns = []string{
	"ts", "cpu_millicores", "cpu_capacity_millicores", "memory_bytes", "memory_capacity_bytes",
	"disk_read_kbps", "disk_write_kbps", "net_rx_kbps", "net_tx_kbps",
}

// insertUsageBatch writes one batch in one transaction and returns how many
// samples were new.
func (s *Store) insertUsageBatch(ctx context.Context, seriesID int64, batch []usage.Sample) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit
	// The temporary table has the samples' columns and types but none of
	// their constraints or indexes, so COPY into it cannot fail on a
	// duplicate; the INSERT below checks everything.
	if _, err := tx.Exec(ctx, `
		CREATE TEMPORARY TABLE usage_import ON COMMIT DROP AS
		SELECT ts, cpu_millicores, cpu_capacity_millicores, memory_bytes, memory_capacity_bytes,
		       disk_read_kbps, disk_write_kbps, net_rx_kbps, net_tx_kbps
		FROM usage_samples WITH NO DATA`); err != nil {
		return 0, err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_import"}, usageColumns, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
		u := batch[i]
		return []any{u.Time, u.CPUMillicores, u.CPUCapacityMillicores, u.MemoryBytes, u.MemoryCapacityBytes,
			float32(u.DiskReadKBps), float32(u.DiskWriteKBps), float32(u.NetRxKBps), float32(u.NetTxKBps)}, nil
	})); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO usage_samples (series_id, ts, cpu_millicores, cpu_capacity_millicores, memory_bytes, memory_capacity_bytes,
		                           disk_read_kbps, disk_write_kbps, net_rx_kbps, net_tx_kbps)
		SELECT $1, ts, cpu_millicores, cpu_capacity_millicores, memory_bytes, memory_capacity_bytes,
		       disk_read_kbps, disk_write_kbps, net_rx_kbps, net_tx_kbps
		FROM usage_import
		ORDER BY ts
		ON CONFLICT (series_id, ts) DO NOTHING`, seriesID)
	if err != nil {
		return 0, err
	}
	// The series row summarises its samples, in the same transaction so the
	// two always agree. Recomputing from the batch (not the rows inserted)
	// is right too when every sample was already there.
	first, last := batch[0].Time, batch[0].Time
	var cpu, mem int64
	for _, u := range batch {
		first, last = minTime(first, u.Time), maxTime(last, u.Time)
		cpu, mem = max(cpu, u.CPUCapacityMillicores), max(mem, u.MemoryCapacityBytes)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE usage_series
		SET first_sample_at = LEAST(first_sample_at, $2),
		    last_sample_at = GREATEST(last_sample_at, $3),
		    cpu_provisioned_millicores = GREATEST(cpu_provisioned_millicores, $4),
		    memory_provisioned_bytes = GREATEST(memory_provisioned_bytes, $5)
		WHERE id = $1`, seriesID, first, last, cpu, mem); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// UsageSeriesFilter selects usage series; empty fields match everything.
type UsageSeriesFilter struct {
	Origin        usage.Origin
	Host          string
	Service       string
	CompositionID string
}

const usageSeriesColumns = `id, origin, host, service, COALESCE(composition_id::text, ''), interval_seconds,
	cpu_provisioned_millicores, memory_provisioned_bytes, first_sample_at, last_sample_at`

func scanUsageSeries(row pgx.Row) (usage.Series, error) {
	var s usage.Series
	var origin string
	var first, last *time.Time
	err := row.Scan(&s.ID, &origin, &s.Host, &s.Service, &s.CompositionID, &s.IntervalSeconds,
		&s.CPUProvisionedMillicores, &s.MemoryProvisionedBytes, &first, &last)
	s.Origin = usage.Origin(origin)
	if first != nil {
		s.FirstSample = first.UTC()
	}
	if last != nil {
		s.LastSample = last.UTC()
	}
	return s, err
}

// UsageSeries returns the series (origin, host, service) names, or
// ENOTFOUND.
func (s *Store) UsageSeries(ctx context.Context, origin usage.Origin, host, service string) (usage.Series, error) {
	series, err := scanUsageSeries(s.pool.QueryRow(ctx, `SELECT `+usageSeriesColumns+`
		FROM usage_series WHERE origin = $1 AND host = $2 AND service = $3`, string(origin), host, service))
	if errors.Is(err, pgx.ErrNoRows) {
		return usage.Series{}, domain.Errorf(domain.ENOTFOUND, "no usage series %s/%s/%s", origin, host, service)
	}
	if err != nil {
		return usage.Series{}, fmt.Errorf("reading usage series %s/%s/%s: %w", origin, host, service, err)
	}
	return series, nil
}

// ListUsageSeries returns the series f selects, ordered by origin, host and
// service.
func (s *Store) ListUsageSeries(ctx context.Context, f UsageSeriesFilter) ([]usage.Series, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+usageSeriesColumns+`
		FROM usage_series
		WHERE ($1 = '' OR origin = $1) AND ($2 = '' OR host = $2) AND ($3 = '' OR service = $3)
		  AND ($4 = '' OR composition_id = NULLIF($4, '')::uuid)
		ORDER BY origin, host, service`, string(f.Origin), f.Host, f.Service, f.CompositionID)
	if err != nil {
		return nil, constraintError("listing usage series", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (usage.Series, error) { return scanUsageSeries(row) })
	if err != nil {
		return nil, constraintError("listing usage series", err)
	}
	return list, nil
}

// UsageSamples returns the samples of series seriesID in [from, to), in time
// order; a zero from or to leaves that end open. A month of 5-minute samples
// is about 8,600.
func (s *Store) UsageSamples(ctx context.Context, seriesID int64, from, to time.Time) ([]usage.Sample, error) {
	var lo, hi *time.Time
	if !from.IsZero() {
		lo = &from
	}
	if !to.IsZero() {
		hi = &to
	}
	rows, err := s.pool.Query(ctx, `
		SELECT ts, cpu_millicores, cpu_capacity_millicores, memory_bytes, memory_capacity_bytes,
		       disk_read_kbps, disk_write_kbps, net_rx_kbps, net_tx_kbps
		FROM usage_samples
		WHERE series_id = $1 AND ($2::timestamptz IS NULL OR ts >= $2) AND ($3::timestamptz IS NULL OR ts < $3)
		ORDER BY ts`, seriesID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("reading usage samples of series %d: %w", seriesID, err)
	}
	samples, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (usage.Sample, error) {
		var u usage.Sample
		var dr, dw, rx, tx float32
		err := row.Scan(&u.Time, &u.CPUMillicores, &u.CPUCapacityMillicores, &u.MemoryBytes, &u.MemoryCapacityBytes, &dr, &dw, &rx, &tx)
		u.Time = u.Time.UTC()
		u.DiskReadKBps, u.DiskWriteKBps, u.NetRxKBps, u.NetTxKBps = float64(dr), float64(dw), float64(rx), float64(tx)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading usage samples of series %d: %w", seriesID, err)
	}
	return samples, nil
}
