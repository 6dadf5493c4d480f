package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Composition is a composition as the history holds it.
type Composition struct {
	ID       string
	Name     string
	Manifest json.RawMessage // the request as sent (normalised by jsonb)
	Strategy domain.Strategy
	Limits   domain.Resources
	Status   domain.CompositionStatus
	Plan     *domain.Plan // nil until RecordPlan
	Error    string
	Timings  map[string]int64 // stage -> milliseconds
	Feasible *bool
	// ModelVersion is the model that scored its candidates, "" when none.
	ModelVersion string
	// Pool is the capacity pool it was provisioned from, Output where it
	// was materialised ("<host>:<dir>"); "" until then.
	Pool, Output string
	// ReleasedAt is when the finished composition's environment was torn
	// down (ReleaseComposition); nil while it stands.
	ReleasedAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// CreateComposition records a new composition of manifest m, whose request
// body was raw, with status pending, and returns its id. The manifest's
// sources are recorded with it. It returns EINVALID when raw is not a JSON
// object or m breaks a constraint (the message names it).
func (s *Store) CreateComposition(ctx context.Context, m *domain.Manifest, raw []byte) (string, error) {
	const op = "recording composition"
	if !json.Valid(raw) {
		return "", domain.Errorf(domain.EINVALID, "%s: the manifest is not valid JSON", op)
	}
	var id string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		id, err = createComposition(ctx, tx, m, raw)
		return err
	})
	if err != nil {
		return "", constraintError(op, err)
	}
	return id, nil
}

// createComposition inserts composition m and its sources in tx.
func createComposition(ctx context.Context, tx pgx.Tx, m *domain.Manifest, raw []byte) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `
			INSERT INTO compositions (name, manifest, strategy, limit_cpu_millicores, limit_memory_bytes, limit_disk_bytes)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text`,
		m.Name, json.RawMessage(raw), string(m.ConflictResolution),
		m.ResourceLimits.CPUMillicores, m.ResourceLimits.MemoryBytes, m.ResourceLimits.DiskBytes).Scan(&id)
	if err != nil {
		return "", err
	}
	rows := make([][]any, len(m.Sources))
	for i, src := range m.Sources {
		rows[i] = []any{id, i, string(src.Ref()), string(src.Type), src.Priority, nonNilStrings(src.Tags)}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"composition_sources"},
		[]string{"composition_id", "position", "ref", "type", "priority", "tags"}, pgx.CopyFromRows(rows))
	return id, err
}

// Submission is a composition request to record.
type Submission struct {
	Manifest *domain.Manifest
	Raw      []byte // the request body, a JSON object
	// Key is the client's Idempotency-Key, "" for none; Digest is the
	// request's digest, and TTL how long the key is remembered.
	Key, Digest string
	TTL         time.Duration
	// Enqueue schedules the composition's job in the same transaction.
	Enqueue func(ctx context.Context, tx pgx.Tx, id string) error
}

// Submitted is what SubmitComposition did.
type Submitted struct {
	ID string
	// Replayed: the key was seen with the same request, and ID is the
	// composition that request made; nothing new was recorded.
	Replayed bool
}

// SubmitComposition records a new composition with status pending and
// schedules its job, in one transaction: either both happen or neither.
// With a key, requests carrying the same key are taken one at a time (a
// transaction-scoped advisory lock on the key): a repeat of the same
// request gets the first one's composition, Replayed; a different request
// with a key in use gets ECONFLICT, naming the key.
func (s *Store) SubmitComposition(ctx context.Context, sub Submission) (Submitted, error) {
	const op = "recording composition"
	if !json.Valid(sub.Raw) {
		return Submitted{}, domain.Errorf(domain.EINVALID, "%s: the manifest is not valid JSON", op)
	}
	if sub.Key != "" && (len(sub.Key) > 255 || sub.TTL <= 0 || sub.Digest == "") {
		return Submitted{}, domain.Errorf(domain.EINVALID, "%s: an idempotency key is 1 to 255 bytes, with a request digest and a positive time to live", op)
	}
	var out Submitted
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if sub.Key != "" {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('snapcompose-idempotency:' || $1, 0))`, sub.Key); err != nil {
				return err
			}
			k, err := scanIdempotencyKey(tx.QueryRow(ctx, `SELECT `+idempotencyColumns+` FROM idempotency_keys WHERE key = $1 AND expires_at > now()`, sub.Key))
			switch {
			case err == nil && k.RequestDigest != sub.Digest:
				return domain.Errorf(domain.ECONFLICT, "this Idempotency-Key was already used for a different request (composition %s); use a new key for a new request", k.CompositionID)
			case err == nil:
				out = Submitted{ID: k.CompositionID, Replayed: true}
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
		}
		id, err := createComposition(ctx, tx, sub.Manifest, sub.Raw)
		if err != nil {
			return err
		}
		if sub.Key != "" {
			_, err := tx.Exec(ctx, `
				INSERT INTO idempotency_keys (key, request_digest, composition_id, expires_at)
				VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
				ON CONFLICT (key) DO UPDATE SET request_digest = EXCLUDED.request_digest, composition_id = EXCLUDED.composition_id,
					created_at = now(), expires_at = EXCLUDED.expires_at`,
				sub.Key, sub.Digest, id, sub.TTL.Microseconds())
			if err != nil {
				return err
			}
		}
		if sub.Enqueue != nil {
			if err := sub.Enqueue(ctx, tx, id); err != nil {
				return err
			}
		}
		out = Submitted{ID: id}
		return nil
	})
	if err != nil {
		return Submitted{}, constraintError(op, err)
	}
	return out, nil
}

// ReleaseComposition tears finished composition id down in the history:
// its capacity goes back to the pool and it is marked released (the
// caller removes its directory). Releasing again changes nothing. It
// returns ECONFLICT while the composition has not finished (cancel it
// first) and ENOTFOUND when there is no such composition.
func (s *Store) ReleaseComposition(ctx context.Context, id string) error {
	op := "releasing composition " + id
	if err := checkID(id); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM compositions WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "composition %s does not exist", id)
		}
		if err != nil {
			return err
		}
		if !domain.CompositionStatus(status).Final() {
			return domain.Errorf(domain.ECONFLICT, "composition %s is %s: cancel it first", id, status)
		}
		if _, err := tx.Exec(ctx, `UPDATE reservations SET released_at = clock_timestamp() WHERE composition_id = $1 AND released_at IS NULL`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE compositions SET released_at = coalesce(released_at, now()), updated_at = now() WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return constraintError(op, err)
	}
	return nil
}

// SetCompositionPlace records the pool composition id was provisioned from
// and where it was materialised; "" keeps what is recorded.
func (s *Store) SetCompositionPlace(ctx context.Context, id, pool, output string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `UPDATE compositions SET pool = coalesce(nullif($2, ''), pool), output = coalesce(nullif($3, ''), output), updated_at = now() WHERE id = $1`, id, pool, output)
	if err != nil {
		return constraintError("recording where composition "+id+" was provisioned", err)
	}
	return nil
}

// StatusUpdate is a change of a composition's status.
type StatusUpdate struct {
	Status domain.CompositionStatus
	// Error says why the composition failed; required with StatusFailed.
	// Empty keeps the one recorded.
	Error string
	// Timings are merged into those recorded: stage -> milliseconds.
	Timings map[string]int64
	// Feasible, when set, replaces the one recorded.
	Feasible *bool
}

// SetCompositionStatus moves composition id to u.Status and records the
// rest of u. A final status (succeeded, failed, cancelled) sets finished_at.
// It returns ENOTFOUND when there is no such composition, ECONFLICT when it
// has already finished, and EINVALID for an unknown status or a failure
// without an error (the message names the constraint).
func (s *Store) SetCompositionStatus(ctx context.Context, id string, u StatusUpdate) error {
	op := "setting the status of composition " + id
	if err := checkID(id); err != nil {
		return err
	}
	timings := []byte("{}")
	if u.Timings != nil {
		timings, _ = json.Marshal(u.Timings) // a map of strings to integers always encodes
	}
	var updated bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM compositions WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "%s: no such composition", op)
		}
		if err != nil {
			return err
		}
		if domain.CompositionStatus(status).Final() {
			return domain.Errorf(domain.ECONFLICT, "%s: it already %s", op, status)
		}
		tag, err := tx.Exec(ctx, `
			UPDATE compositions SET
				status = $2,
				error = coalesce(nullif($3, ''), error),
				timings = timings || $4::jsonb,
				feasible = coalesce($5, feasible),
				updated_at = now(),
				finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') THEN now() END
			WHERE id = $1`,
			id, string(u.Status), u.Error, json.RawMessage(timings), u.Feasible)
		updated = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return constraintError(op, err)
	}
	if !updated {
		return domain.Errorf(domain.ENOTFOUND, "%s: no such composition", op)
	}
	return nil
}

const compositionColumns = `c.id::text, c.name, c.strategy, c.limit_cpu_millicores, c.limit_memory_bytes, c.limit_disk_bytes,
	c.status, coalesce(c.error, ''), c.timings, c.feasible, coalesce(mv.version, ''), coalesce(c.pool, ''), coalesce(c.output, ''),
	c.released_at, c.created_at, c.updated_at, c.finished_at`

func compositionFields(c *Composition) []any {
	return []any{&c.ID, &c.Name, &c.Strategy, &c.Limits.CPUMillicores, &c.Limits.MemoryBytes, &c.Limits.DiskBytes,
		&c.Status, &c.Error, &c.Timings, &c.Feasible, &c.ModelVersion, &c.Pool, &c.Output, &c.ReleasedAt, &c.CreatedAt, &c.UpdatedAt, &c.FinishedAt}
}

// GetComposition returns composition id with its manifest and plan. It
// returns EINVALID when id is not a UUID and ENOTFOUND when there is no such
// composition.
func (s *Store) GetComposition(ctx context.Context, id string) (*Composition, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var c Composition
	var plan []byte
	err := s.pool.QueryRow(ctx, `
		SELECT `+compositionColumns+`, c.manifest, c.plan
		FROM compositions c LEFT JOIN model_versions mv ON mv.id = c.model_version_id
		WHERE c.id = $1`, id).Scan(append(compositionFields(&c), &c.Manifest, &plan)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "composition %s does not exist", id)
	}
	if err != nil {
		return nil, constraintError("reading composition "+id, err)
	}
	if plan != nil {
		c.Plan = new(domain.Plan)
		if err := json.Unmarshal(plan, c.Plan); err != nil {
			return nil, fmt.Errorf("decoding the plan of composition %s: %w", id, err)
		}
	}
	return &c, nil
}

// CompositionFilter selects compositions to list. Zero fields select all.
type CompositionFilter struct {
	From     time.Time // created at or after
	To       time.Time // created before
	Strategy domain.Strategy
	Status   domain.CompositionStatus
	// Limit bounds the page: DefaultPageSize when 0, at most MaxPageSize.
	Limit int
	// Cursor continues from the page that returned it.
	Cursor string
}

// Page sizes of ListCompositions.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// CompositionPage is one page of a listing, newest first.
type CompositionPage struct {
	// Compositions carry neither manifest nor plan: GetComposition has them.
	Compositions []Composition
	// NextCursor continues the listing; "" on the last page.
	NextCursor string
}

// ListCompositions lists compositions newest first, a page at a time. Pages
// are cut by (created_at, id), so compositions created while a client pages
// through neither repeat nor shift the pages. It returns EINVALID for a
// malformed cursor or a limit out of range.
func (s *Store) ListCompositions(ctx context.Context, f CompositionFilter) (CompositionPage, error) {
	limit := f.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 0 || limit > MaxPageSize {
		return CompositionPage{}, domain.Errorf(domain.EINVALID, "limit %d is out of range: want 1 to %d", f.Limit, MaxPageSize)
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.From.IsZero() {
		where = append(where, "c.created_at >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "c.created_at < "+arg(f.To))
	}
	if f.Strategy != "" {
		where = append(where, "c.strategy = "+arg(string(f.Strategy)))
	}
	if f.Status != "" {
		where = append(where, "c.status = "+arg(string(f.Status)))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return CompositionPage{}, err
		}
		where = append(where, fmt.Sprintf("(c.created_at, c.id) < (%s, %s::uuid)", arg(at), arg(id)))
	}
	query := `SELECT ` + compositionColumns + ` FROM compositions c LEFT JOIN model_versions mv ON mv.id = c.model_version_id`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// One extra row tells whether another page follows.
	query += " ORDER BY c.created_at DESC, c.id DESC LIMIT " + arg(limit+1)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return CompositionPage{}, constraintError("listing compositions", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Composition, error) {
		var c Composition
		return c, r.Scan(compositionFields(&c)...)
	})
	if err != nil {
		return CompositionPage{}, constraintError("listing compositions", err)
	}
	page := CompositionPage{Compositions: list}
	if len(list) > limit {
		page.Compositions = list[:limit]
		last := list[limit-1]
		page.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	return page, nil
}

// A cursor is the (created_at, id) of the last composition of a page,
// opaque to clients.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(cursor string) (time.Time, string, error) {
	bad := domain.Errorf(domain.EINVALID, "cursor %q is not one this server handed out", cursor)
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", bad
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok || checkID(id) != nil {
		return time.Time{}, "", bad
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", bad
	}
	return at, id, nil
}
