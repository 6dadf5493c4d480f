package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// History for analysts: compositions and conflicts with their outcomes,
// filtered and paged, and a summary — all read through the analyst views.

// HistoryFilter selects history rows; zero fields select all.
type HistoryFilter struct {
	From, To time.Time // created in [From, To)
	Strategy domain.Strategy
	Status   domain.CompositionStatus
	// Verdict is the latest outcome's: healthy, degraded, failed, or
	// "none" for compositions nobody reported on.
	Verdict string
	// Source is a source ref the composition used (compositions) or a
	// claimant of the conflict (conflicts).
	Source string
	Kind   domain.ClaimKind // conflicts only
	Action domain.Action    // conflicts only
	// Limit bounds a page (DefaultPageSize when 0, at most MaxPageSize);
	// negative means no limit (an export).
	Limit  int
	Cursor string
}

// HistoryComposition is one composition of the history.
type HistoryComposition struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Strategy     string     `json:"strategy"`
	Status       string     `json:"status"`
	Feasible     *bool      `json:"feasible"`
	Error        string     `json:"error"`
	CreatedAt    time.Time  `json:"created_at"`
	FinishedAt   *time.Time `json:"finished_at"`
	ModelVersion string     `json:"model_version"`
	Verdict      string     `json:"verdict"` // "" when none
	Sources      []string   `json:"sources"`
	// Timings are milliseconds per stage (compose, record, provision,
	// instantiate, total) for compositions the service ran.
	Timings map[string]int64 `json:"timings_ms"`
}

// HistoryConflict is one settled conflict of the history.
type HistoryConflict struct {
	ID            int64           `json:"id"`
	CompositionID string          `json:"composition_id"`
	CreatedAt     time.Time       `json:"created_at"`
	Strategy      string          `json:"strategy"`
	Ordinal       int             `json:"ordinal"`
	Kind          string          `json:"kind"`
	Key           string          `json:"key"`
	Claimants     json.RawMessage `json:"claimants"`
	Action        string          `json:"action"`
	Winner        string          `json:"winner"`
	Score         *float64        `json:"score"`
	Ambiguous     bool            `json:"ambiguous"`
	Verdict       string          `json:"verdict"`
}

func (f HistoryFilter) limit() (int, error) {
	switch {
	case f.Limit < 0:
		return -1, nil
	case f.Limit == 0:
		return DefaultPageSize, nil
	case f.Limit > MaxPageSize:
		return 0, domain.Errorf(domain.EINVALID, "limit: %d is more than %d", f.Limit, MaxPageSize)
	}
	return f.Limit, nil
}

// historyWhere is the filter shared by both listings, over the analyst view
// aliased ac.
const historyWhere = `
	($1::timestamptz IS NULL OR ac.created_at >= $1) AND ($2::timestamptz IS NULL OR ac.created_at < $2)
	AND ($3 = '' OR ac.strategy = $3) AND ($4 = '' OR ac.status = $4)
	AND ($5 = '' OR coalesce(ac.verdict, 'none') = $5)`

func (f HistoryFilter) args() []any {
	return []any{nullTime(f.From), nullTime(f.To), string(f.Strategy), string(f.Status), f.Verdict}
}

// HistoryCompositions lists compositions newest first with their latest
// verdict and sources, a page at a time, or all of them through each when
// f.Limit is negative. It returns the cursor of the next page ("" at the
// end) and EINVALID for a malformed cursor or limit.
func (s *Store) HistoryCompositions(ctx context.Context, f HistoryFilter, each func(HistoryComposition) error) (string, error) {
	const op = "reading the composition history"
	limit, err := f.limit()
	if err != nil {
		return "", err
	}
	var afterAt *time.Time
	var afterID *string
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return "", err
		}
		afterAt, afterID = &at, &id
	}
	args := append(f.args(), f.Source, afterAt, afterID, limit+1)
	rows, err := s.pool.Query(ctx, `
		SELECT ac.id::text, ac.name, ac.strategy, ac.status, ac.feasible, coalesce(ac.error, ''), ac.created_at, ac.finished_at,
			coalesce(ac.model_version, ''), coalesce(ac.verdict, ''),
			(SELECT array_agg(s.ref ORDER BY s.position) FROM composition_sources s WHERE s.composition_id = ac.id),
			(SELECT c.timings FROM compositions c WHERE c.id = ac.id)
		FROM analyst_compositions ac
		WHERE `+historyWhere+`
			AND ($6 = '' OR EXISTS (SELECT 1 FROM composition_sources s WHERE s.composition_id = ac.id AND s.ref = $6))
			AND ($7::timestamptz IS NULL OR (ac.created_at, ac.id) < ($7, $8::uuid))
		ORDER BY ac.created_at DESC, ac.id DESC
		LIMIT CASE WHEN $9 > 0 THEN $9 END`, args...)
	if err != nil {
		return "", constraintError(op, err)
	}
	defer rows.Close()
	n := 0
	var last HistoryComposition
	for rows.Next() {
		var c HistoryComposition
		if err := rows.Scan(&c.ID, &c.Name, &c.Strategy, &c.Status, &c.Feasible, &c.Error, &c.CreatedAt, &c.FinishedAt,
			&c.ModelVersion, &c.Verdict, &c.Sources, &c.Timings); err != nil {
			return "", constraintError(op, err)
		}
		if n++; limit > 0 && n > limit {
			return encodeCursor(last.CreatedAt, last.ID), nil
		}
		if err := each(c); err != nil {
			return "", err
		}
		last = c
	}
	if err := rows.Err(); err != nil {
		return "", constraintError(op, err)
	}
	return "", nil
}

// HistoryConflicts lists settled conflicts newest first with their
// composition's strategy and latest verdict, like HistoryCompositions.
func (s *Store) HistoryConflicts(ctx context.Context, f HistoryFilter, each func(HistoryConflict) error) (string, error) {
	const op = "reading the conflict history"
	limit, err := f.limit()
	if err != nil {
		return "", err
	}
	var after *int64
	if f.Cursor != "" {
		n, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || n < 1 {
			return "", domain.Errorf(domain.EINVALID, "cursor: %q is not a cursor this listing gave", f.Cursor)
		}
		after = &n
	}
	args := append(f.args(), f.Source, string(f.Kind), string(f.Action), after, limit+1)
	rows, err := s.pool.Query(ctx, `
		SELECT cf.id, cf.composition_id::text, ac.created_at, ac.strategy, cf.ordinal, cf.kind, cf.key, cf.claimants, cf.action,
			coalesce(cf.winner, ''), cf.score, cf.ambiguous, coalesce(ac.verdict, '')
		FROM conflicts cf JOIN analyst_compositions ac ON ac.id = cf.composition_id
		WHERE `+historyWhere+`
			AND ($6 = '' OR cf.claimants @> jsonb_build_array(jsonb_build_object('source', $6::text)))
			AND ($7 = '' OR cf.kind = $7) AND ($8 = '' OR cf.action = $8)
			AND ($9::bigint IS NULL OR cf.id < $9)
		ORDER BY cf.id DESC
		LIMIT CASE WHEN $10 > 0 THEN $10 END`, args...)
	if err != nil {
		return "", constraintError(op, err)
	}
	defer rows.Close()
	n := 0
	var last int64
	for rows.Next() {
		var c HistoryConflict
		if err := rows.Scan(&c.ID, &c.CompositionID, &c.CreatedAt, &c.Strategy, &c.Ordinal, &c.Kind, &c.Key, &c.Claimants, &c.Action,
			&c.Winner, &c.Score, &c.Ambiguous, &c.Verdict); err != nil {
			return "", constraintError(op, err)
		}
		if n++; limit > 0 && n > limit {
			return strconv.FormatInt(last, 10), nil
		}
		if err := each(c); err != nil {
			return "", err
		}
		last = c.ID
	}
	if err := rows.Err(); err != nil {
		return "", constraintError(op, err)
	}
	return "", nil
}

// HistorySummary is the history in a few tables.
type HistorySummary struct {
	From       *time.Time          `json:"from,omitempty"`
	To         *time.Time          `json:"to,omitempty"`
	Strategies []StrategySummary   `json:"strategies"`
	Conflicts  []ConflictSummary   `json:"conflicts"`
	Allocation []AllocationSummary `json:"allocation_vs_usage"`
	Models     []ModelSummary      `json:"models"`
}

// StrategySummary is how a strategy's compositions turned out.
type StrategySummary struct {
	Strategy     string   `json:"strategy"`
	Compositions int64    `json:"compositions"`
	Finished     int64    `json:"finished"`
	Succeeded    int64    `json:"succeeded"`
	Failed       int64    `json:"failed"`
	SuccessRate  *float64 `json:"success_rate"` // of finished
	WithVerdict  int64    `json:"with_verdict"`
	Healthy      int64    `json:"healthy"`
	HealthyRate  *float64 `json:"healthy_rate"` // of those with a verdict
}

// ConflictSummary counts conflicts of a kind settled by an action.
type ConflictSummary struct {
	Kind         string `json:"kind"`
	Action       string `json:"action"`
	Conflicts    int64  `json:"conflicts"`
	Compositions int64  `json:"compositions"`
	Ambiguous    int64  `json:"ambiguous"`
}

// AllocationSummary says how allocations fitted the usage observed, per
// strategy.
type AllocationSummary struct {
	Strategy          string   `json:"strategy"`
	Services          int64    `json:"services"`
	Samples           int64    `json:"samples"`
	CPUOverrunRate    *float64 `json:"cpu_overrun_rate"`
	CPUSlack          *float64 `json:"cpu_slack"`
	MemoryOverrunRate *float64 `json:"memory_overrun_rate"`
	MemorySlack       *float64 `json:"memory_slack"`
}

// ModelSummary is a model version with its metrics and how the
// compositions it decided turned out.
type ModelSummary struct {
	Version      string          `json:"version"`
	CreatedAt    time.Time       `json:"created_at"`
	Promoted     bool            `json:"promoted"`
	Metrics      json.RawMessage `json:"metrics"`
	Compositions int64           `json:"compositions"`
	WithVerdict  int64           `json:"with_verdict"`
	HealthyRate  *float64        `json:"healthy_rate"`
}

// Summary sums the analyst views over compositions created in [from, to)
// (zero: open ends).
func (s *Store) Summary(ctx context.Context, from, to time.Time) (HistorySummary, error) {
	const op = "summarising the history"
	out := HistorySummary{Strategies: []StrategySummary{}, Conflicts: []ConflictSummary{}, Allocation: []AllocationSummary{}, Models: []ModelSummary{}}
	if !from.IsZero() {
		out.From = &from
	}
	if !to.IsZero() {
		out.To = &to
	}
	window := `($1::timestamptz IS NULL OR created_at >= $1) AND ($2::timestamptz IS NULL OR created_at < $2)`
	args := []any{nullTime(from), nullTime(to)}
	queries := []struct {
		sql  string
		scan func(pgx.Rows) error
		all  bool // not windowed
	}{
		{`SELECT strategy, count(*), count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')),
				count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
				count(verdict), count(*) FILTER (WHERE verdict = 'healthy')
			FROM analyst_compositions WHERE ` + window + ` GROUP BY strategy ORDER BY strategy`,
			func(r pgx.Rows) error {
				var x StrategySummary
				if err := r.Scan(&x.Strategy, &x.Compositions, &x.Finished, &x.Succeeded, &x.Failed, &x.WithVerdict, &x.Healthy); err != nil {
					return err
				}
				x.SuccessRate, x.HealthyRate = ratio(x.Succeeded, x.Finished), ratio(x.Healthy, x.WithVerdict)
				out.Strategies = append(out.Strategies, x)
				return nil
			}, false},
		{`SELECT kind, action, sum(conflicts)::bigint, sum(compositions)::bigint, sum(ambiguous)::bigint
			FROM analyst_conflict_kinds
			WHERE ($1::timestamptz IS NULL OR day >= ($1 AT TIME ZONE 'UTC')::date) AND ($2::timestamptz IS NULL OR day <= ($2 AT TIME ZONE 'UTC')::date)
			GROUP BY kind, action ORDER BY kind, action`,
			func(r pgx.Rows) error {
				var x ConflictSummary
				if err := r.Scan(&x.Kind, &x.Action, &x.Conflicts, &x.Compositions, &x.Ambiguous); err != nil {
					return err
				}
				out.Conflicts = append(out.Conflicts, x)
				return nil
			}, false},
		{`SELECT c.strategy, count(*), sum(v.samples)::bigint, avg(v.cpu_overrun_rate), avg(v.cpu_slack), avg(v.memory_overrun_rate), avg(v.memory_slack)
			FROM analyst_allocation_vs_usage v JOIN compositions c ON c.id = v.composition_id
			WHERE ($1::timestamptz IS NULL OR c.created_at >= $1) AND ($2::timestamptz IS NULL OR c.created_at < $2)
			GROUP BY c.strategy ORDER BY c.strategy`,
			func(r pgx.Rows) error {
				var x AllocationSummary
				if err := r.Scan(&x.Strategy, &x.Services, &x.Samples, &x.CPUOverrunRate, &x.CPUSlack, &x.MemoryOverrunRate, &x.MemorySlack); err != nil {
					return err
				}
				out.Allocation = append(out.Allocation, x)
				return nil
			}, false},
		{`SELECT version, created_at, promoted, metrics, compositions, with_verdict, healthy_rate::double precision
			FROM analyst_model_versions ORDER BY created_at DESC`,
			func(r pgx.Rows) error {
				var x ModelSummary
				if err := r.Scan(&x.Version, &x.CreatedAt, &x.Promoted, &x.Metrics, &x.Compositions, &x.WithVerdict, &x.HealthyRate); err != nil {
					return err
				}
				out.Models = append(out.Models, x)
				return nil
			}, true},
	}
	for _, q := range queries {
		qargs := args
		if q.all {
			qargs = nil
		}
		rows, err := s.pool.Query(ctx, q.sql, qargs...)
		if err != nil {
			return out, constraintError(op, err)
		}
		for rows.Next() {
			if err := q.scan(rows); err != nil {
				rows.Close()
				return out, constraintError(op, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return out, constraintError(op, err)
		}
	}
	return out, nil
}

func ratio(a, b int64) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}

// CSVHeader and CSVRecord write history rows as CSV.
func (c HistoryComposition) CSVHeader() []string {
	return []string{"id", "name", "strategy", "status", "feasible", "error", "created_at", "finished_at", "model_version", "verdict", "sources"}
}

func (c HistoryComposition) CSVRecord() []string {
	return []string{c.ID, c.Name, c.Strategy, c.Status, boolText(c.Feasible), c.Error, c.CreatedAt.UTC().Format(time.RFC3339Nano),
		timeText(c.FinishedAt), c.ModelVersion, c.Verdict, strings.Join(c.Sources, " ")}
}

func (c HistoryConflict) CSVHeader() []string {
	return []string{"id", "composition_id", "created_at", "strategy", "ordinal", "kind", "key", "claimants", "action", "winner", "score", "ambiguous", "verdict"}
}

func (c HistoryConflict) CSVRecord() []string {
	score := ""
	if c.Score != nil {
		score = strconv.FormatFloat(*c.Score, 'g', -1, 64)
	}
	return []string{strconv.FormatInt(c.ID, 10), c.CompositionID, c.CreatedAt.UTC().Format(time.RFC3339Nano), c.Strategy, strconv.Itoa(c.Ordinal),
		c.Kind, c.Key, string(c.Claimants), c.Action, c.Winner, score, strconv.FormatBool(c.Ambiguous), c.Verdict}
}

func boolText(b *bool) string {
	if b == nil {
		return ""
	}
	return fmt.Sprint(*b)
}

func timeText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// DayOutcome is how one strategy's compositions of one day turned out.
type DayOutcome struct {
	Day                             time.Time
	Strategy                        string
	Compositions, Finished          int64
	Succeeded, WithVerdict, Healthy int64
}

// OutcomesByDay reads analyst_outcome_by_strategy for the days of [from, to)
// (open ends when zero), oldest first; strategy "" for all.
func (s *Store) OutcomesByDay(ctx context.Context, from, to time.Time, strategy string) ([]DayOutcome, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT day::timestamp, strategy, compositions, finished, succeeded, with_verdict, healthy
		FROM analyst_outcome_by_strategy
		WHERE ($1::timestamptz IS NULL OR day >= ($1 AT TIME ZONE 'UTC')::date)
		  AND ($2::timestamptz IS NULL OR day <= ($2 AT TIME ZONE 'UTC')::date)
		  AND ($3 = '' OR strategy = $3)
		ORDER BY day, strategy`, nullTime(from), nullTime(to), strategy)
	if err != nil {
		return nil, constraintError("reading outcomes by day", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DayOutcome, error) {
		var d DayOutcome
		return d, r.Scan(&d.Day, &d.Strategy, &d.Compositions, &d.Finished, &d.Succeeded, &d.WithVerdict, &d.Healthy)
	})
	if err != nil {
		return nil, constraintError("reading outcomes by day", err)
	}
	return out, nil
}

// ServiceFit is how a composed service's allocation fitted its observed
// usage (analyst_allocation_vs_usage).
type ServiceFit struct {
	CompositionID, CompositionName, Strategy, Service string
	CPUAllocated, CPUP95                              float64
	CPUOverrun                                        float64
	MemoryAllocated, MemoryMax                        float64
	MemoryOverrun                                     float64
	Samples                                           int64
}

// ServiceFits lists the services with observed usage, of compositions
// created in [from, to), worst memory overrun first; strategy and source
// ("" for all) narrow it.
func (s *Store) ServiceFits(ctx context.Context, from, to time.Time, strategy, source string, limit int) ([]ServiceFit, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT v.composition_id::text, c.name, c.strategy, v.service, v.cpu_allocated_millicores, v.cpu_p95_millicores,
			v.cpu_overrun_rate, v.memory_allocated_bytes, v.memory_max_bytes, v.memory_overrun_rate, v.samples
		FROM analyst_allocation_vs_usage v JOIN compositions c ON c.id = v.composition_id
		WHERE ($1::timestamptz IS NULL OR c.created_at >= $1) AND ($2::timestamptz IS NULL OR c.created_at < $2)
		  AND ($3 = '' OR c.strategy = $3)
		  AND ($4 = '' OR EXISTS (SELECT 1 FROM composition_sources s WHERE s.composition_id = c.id AND s.ref = $4))
		ORDER BY v.memory_overrun_rate DESC, v.cpu_overrun_rate DESC, c.created_at DESC
		LIMIT $5`, nullTime(from), nullTime(to), strategy, source, limit)
	if err != nil {
		return nil, constraintError("reading allocations against usage", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ServiceFit, error) {
		var f ServiceFit
		return f, r.Scan(&f.CompositionID, &f.CompositionName, &f.Strategy, &f.Service, &f.CPUAllocated, &f.CPUP95, &f.CPUOverrun,
			&f.MemoryAllocated, &f.MemoryMax, &f.MemoryOverrun, &f.Samples)
	})
	if err != nil {
		return nil, constraintError("reading allocations against usage", err)
	}
	return out, nil
}
