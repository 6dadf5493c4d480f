package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// ModelVersion is a trained model of the agent, with its card.
type ModelVersion struct {
	ID            int64
	Version       string
	Card          json.RawMessage // the model card
	Metrics       json.RawMessage // evaluation metrics, an object
	ONNX          []byte          // the model; ListModelVersions leaves it out
	ONNXDigest    string          // domain.Digest of ONNX
	FeatureSchema string          // the feature schema hash the model expects
	CreatedAt     time.Time
	Promoted      bool
	PromotedAt    *time.Time
}

// InsertModelVersion stores a new, unpromoted model version and returns it
// with its id. An empty ONNXDigest is computed from ONNX. It returns
// ECONFLICT when the version exists and EINVALID when a field breaks a
// constraint, such as a digest that is not ONNX's (the message names it).
func (s *Store) InsertModelVersion(ctx context.Context, m ModelVersion) (ModelVersion, error) {
	op := "storing model version " + m.Version
	if m.ONNXDigest == "" {
		m.ONNXDigest = domain.Digest(m.ONNX)
	}
	if m.Metrics == nil {
		m.Metrics = json.RawMessage("{}")
	}
	if !json.Valid(m.Card) || !json.Valid(m.Metrics) {
		return ModelVersion{}, domain.Errorf(domain.EINVALID, "%s: the card and metrics must be JSON objects", op)
	}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO model_versions (version, card, metrics, onnx, onnx_digest, feature_schema)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at`,
		m.Version, m.Card, m.Metrics, m.ONNX, m.ONNXDigest, m.FeatureSchema).Scan(&m.ID, &m.CreatedAt)
	if err != nil {
		return ModelVersion{}, constraintError(op, err)
	}
	m.Promoted, m.PromotedAt = false, nil
	return m, nil
}

// PromoteModel makes version the model that serves, demoting the one that
// did in the same transaction, so there is never a moment with two. Promoting
// the promoted version changes nothing. It returns ENOTFOUND when the version
// does not exist.
func (s *Store) PromoteModel(ctx context.Context, version string) error {
	return s.PromoteModelBy(ctx, version, "", "")
}

// PromoteModelBy is PromoteModel recording who asked and why (see
// Promotions). Promoting the version that serves records nothing.
func (s *Store) PromoteModelBy(ctx context.Context, version, by, reason string) error {
	op := "promoting model version " + version
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var promoted bool
		err := tx.QueryRow(ctx, `SELECT promoted FROM model_versions WHERE version = $1 FOR UPDATE`, version).Scan(&promoted)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "%s: no such version", op)
		}
		if err != nil || promoted {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE model_versions SET promoted = false, promoted_at = NULL WHERE promoted`); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `UPDATE model_versions SET promoted = true, promoted_at = now() WHERE version = $1`, version); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO model_promotions (model_version_id, promoted_by, reason) SELECT id, $2, $3 FROM model_versions WHERE version = $1`, version, by, reason)
		return err
	})
	if err != nil {
		return constraintError(op, err)
	}
	return nil
}

// Promotion is one promotion of a model version.
type Promotion struct {
	Version    string
	PromotedAt time.Time
	By, Reason string
}

// Promotions lists the promotions, newest first.
func (s *Store) Promotions(ctx context.Context) ([]Promotion, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT mv.version, p.promoted_at, p.promoted_by, p.reason
		FROM model_promotions p JOIN model_versions mv ON mv.id = p.model_version_id
		ORDER BY p.promoted_at DESC, p.id DESC`)
	if err != nil {
		return nil, constraintError("listing promotions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Promotion, error) {
		var p Promotion
		return p, r.Scan(&p.Version, &p.PromotedAt, &p.By, &p.Reason)
	})
	if err != nil {
		return nil, constraintError("listing promotions", err)
	}
	return out, nil
}

// RollbackModel promotes again the version that served before the one
// serving now, and returns it. It returns ENOTFOUND when no version served
// before (nothing to roll back to).
func (s *Store) RollbackModel(ctx context.Context, by string) (string, error) {
	current, err := s.PromotedModel(ctx)
	if err != nil {
		return "", err
	}
	var previous string
	err = s.pool.QueryRow(ctx, `
		SELECT mv.version FROM model_promotions p JOIN model_versions mv ON mv.id = p.model_version_id
		WHERE mv.version <> $1 ORDER BY p.promoted_at DESC, p.id DESC LIMIT 1`, current.Version).Scan(&previous)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", domain.Errorf(domain.ENOTFOUND, "no model version served before %s: nothing to roll back to", current.Version)
	}
	if err != nil {
		return "", constraintError("rolling back the model", err)
	}
	return previous, s.PromoteModelBy(ctx, previous, by, "rollback from "+current.Version)
}

const modelColumns = `id, version, card, metrics, onnx_digest, feature_schema, created_at, promoted, promoted_at`

func modelFields(m *ModelVersion) []any {
	return []any{&m.ID, &m.Version, &m.Card, &m.Metrics, &m.ONNXDigest, &m.FeatureSchema, &m.CreatedAt, &m.Promoted, &m.PromotedAt}
}

// PromotedModel returns the model that serves, with its bytes. It returns
// ENOTFOUND when none is promoted.
func (s *Store) PromotedModel(ctx context.Context) (ModelVersion, error) {
	var m ModelVersion
	err := s.pool.QueryRow(ctx, `SELECT `+modelColumns+`, onnx FROM model_versions WHERE promoted`).Scan(append(modelFields(&m), &m.ONNX)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ModelVersion{}, domain.Errorf(domain.ENOTFOUND, "no model version is promoted")
	}
	if err != nil {
		return ModelVersion{}, constraintError("reading the promoted model", err)
	}
	return m, nil
}

// ModelVersion returns model version version with its bytes. It returns
// ENOTFOUND naming the version when there is none.
func (s *Store) ModelVersion(ctx context.Context, version string) (ModelVersion, error) {
	var m ModelVersion
	err := s.pool.QueryRow(ctx, `SELECT `+modelColumns+`, onnx FROM model_versions WHERE version = $1`, version).Scan(append(modelFields(&m), &m.ONNX)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ModelVersion{}, domain.Errorf(domain.ENOTFOUND, "model version %q does not exist (the registry lists its versions: `snapcompose model list`, GET /v1/models)", version)
	}
	if err != nil {
		return ModelVersion{}, constraintError("reading model version "+version, err)
	}
	return m, nil
}

// ListModelVersions returns every model version, newest first, without the
// model bytes.
func (s *Store) ListModelVersions(ctx context.Context) ([]ModelVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+modelColumns+` FROM model_versions ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, constraintError("listing model versions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ModelVersion, error) {
		var m ModelVersion
		return m, r.Scan(modelFields(&m)...)
	})
	if err != nil {
		return nil, constraintError("listing model versions", err)
	}
	return out, nil
}

// Training run statuses.
const (
	TrainingQueued    = "queued"
	TrainingRunning   = "running"
	TrainingSucceeded = "succeeded"
	TrainingFailed    = "failed"
)

// TrainingRun is one run of the retraining pipeline.
type TrainingRun struct {
	ID             int64
	Status         string
	CreatedAt      time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
	DataFrom       *time.Time // the window of history it trains on
	DataTo         *time.Time
	Rows           *int64
	Metrics        json.RawMessage
	Progress       float32 // 0..1
	Error          string
	ModelVersionID *int64 // the model it produced
}

// CreateTrainingRun records a queued run over the history from dataFrom to
// dataTo (zero times leave the window open) and returns it. It returns
// EINVALID when dataFrom is after dataTo.
func (s *Store) CreateTrainingRun(ctx context.Context, dataFrom, dataTo time.Time) (TrainingRun, error) {
	row := s.pool.QueryRow(ctx, `INSERT INTO training_runs (data_from, data_to) VALUES ($1, $2) RETURNING `+trainingColumns,
		nullTime(dataFrom), nullTime(dataTo))
	r, err := scanTrainingRun(row)
	if err != nil {
		return TrainingRun{}, constraintError("recording a training run", err)
	}
	return r, nil
}

// TrainingUpdate changes a training run. Nil fields are left as they are.
type TrainingUpdate struct {
	// Status moves the run on: running sets started_at, succeeded and
	// failed set finished_at. "" keeps it.
	Status         string
	Progress       *float32
	Rows           *int64
	Metrics        json.RawMessage
	Error          string // required with TrainingFailed
	ModelVersionID *int64
}

// UpdateTrainingRun applies u to run id and returns the run as it now is.
// It returns ENOTFOUND when there is no such run (or model version),
// ECONFLICT when the run has finished, and EINVALID when u breaks a
// constraint (an unknown status, progress out of 0..1, a failure without an
// error; the message names it).
func (s *Store) UpdateTrainingRun(ctx context.Context, id int64, u TrainingUpdate) (TrainingRun, error) {
	op := "updating a training run"
	if u.Metrics != nil && !json.Valid(u.Metrics) {
		return TrainingRun{}, domain.Errorf(domain.EINVALID, "%s: the metrics must be a JSON object", op)
	}
	var out TrainingRun
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM training_runs WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "%s: training run %d does not exist", op, id)
		}
		if err != nil {
			return err
		}
		if status == TrainingSucceeded || status == TrainingFailed {
			return domain.Errorf(domain.ECONFLICT, "%s: training run %d already %s", op, id, status)
		}
		out, err = scanTrainingRun(tx.QueryRow(ctx, `
			UPDATE training_runs SET
				status = coalesce(nullif($2, ''), status),
				started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
				finished_at = CASE WHEN $2 IN ('succeeded', 'failed') THEN now() ELSE finished_at END,
				progress = coalesce($3, progress),
				rows = coalesce($4, rows),
				metrics = coalesce($5, metrics),
				error = coalesce(nullif($6, ''), error),
				model_version_id = coalesce($7, model_version_id)
			WHERE id = $1 RETURNING `+trainingColumns,
			id, u.Status, u.Progress, u.Rows, u.Metrics, u.Error, u.ModelVersionID))
		return err
	})
	if err != nil {
		return TrainingRun{}, constraintError(op, err)
	}
	return out, nil
}

// TrainingRun returns run id. It returns ENOTFOUND when there is no such run.
func (s *Store) TrainingRun(ctx context.Context, id int64) (TrainingRun, error) {
	r, err := scanTrainingRun(s.pool.QueryRow(ctx, `SELECT `+trainingColumns+` FROM training_runs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return TrainingRun{}, domain.Errorf(domain.ENOTFOUND, "training run %d does not exist", id)
	}
	if err != nil {
		return TrainingRun{}, constraintError("reading a training run", err)
	}
	return r, nil
}

const trainingColumns = `id, status, created_at, started_at, finished_at, data_from, data_to, rows, metrics, progress, coalesce(error, ''), model_version_id`

func scanTrainingRun(row pgx.Row) (TrainingRun, error) {
	var r TrainingRun
	err := row.Scan(&r.ID, &r.Status, &r.CreatedAt, &r.StartedAt, &r.FinishedAt, &r.DataFrom, &r.DataTo, &r.Rows, &r.Metrics, &r.Progress, &r.Error, &r.ModelVersionID)
	return r, err
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
