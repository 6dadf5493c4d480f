package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Template is one version of a catalog template.
type Template struct {
	ID          string
	Description string
	Tags        []string
	Version     int
	Body        string
	Digest      string    // domain.Digest of Body
	Current     bool      // this is the version the catalog holds now
	CreatedAt   time.Time // when this version was first stored
}

// UpsertTemplate stores t's description, tags and body (t.Version, Digest,
// Current and CreatedAt are ignored) and returns the stored version. A body
// seen before keeps the version it had, so only a changed body makes a new
// version; a template reverted to an earlier body becomes that version again.
// It returns EINVALID when the id is not a valid template id.
func (s *Store) UpsertTemplate(ctx context.Context, t Template) (Template, error) {
	const op = "storing template"
	digest := domain.Digest([]byte(t.Body))
	var out Template
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Create the row if needed and lock it either way, so concurrent
		// upserts of one template number their versions one after another.
		_, err := tx.Exec(ctx, `
			INSERT INTO templates (id, description, tags, current_version) VALUES ($1, $2, $3, 1)
			ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, tags = EXCLUDED.tags, deleted_at = NULL,
				updated_at = CASE WHEN (templates.description, templates.tags) IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.tags)
					THEN now() ELSE templates.updated_at END`,
			t.ID, t.Description, nonNilStrings(t.Tags))
		if err != nil {
			return err
		}
		var version int
		err = tx.QueryRow(ctx, `SELECT version FROM template_versions WHERE template_id = $1 AND digest = $2`, t.ID, digest).Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = tx.QueryRow(ctx, `
				INSERT INTO template_versions (template_id, version, body, digest)
				SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM template_versions WHERE template_id = $1
				RETURNING version`, t.ID, t.Body, digest).Scan(&version)
			if err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE templates SET current_version = $2, updated_at = now() WHERE id = $1 AND current_version <> $2`, t.ID, version); err != nil {
			return err
		}
		out, err = scanTemplate(tx.QueryRow(ctx, templateQuery+` WHERE v.template_id = $1 AND v.version = $2`, t.ID, version))
		return err
	})
	if err != nil {
		return Template{}, constraintError(op+" "+t.ID, err)
	}
	return out, nil
}

const templateQuery = `
	SELECT t.id, t.description, t.tags, v.version, v.body, v.digest, v.version = t.current_version, v.created_at
	FROM template_versions v JOIN templates t ON t.id = v.template_id`

func scanTemplate(row pgx.Row) (Template, error) {
	var t Template
	err := row.Scan(&t.ID, &t.Description, &t.Tags, &t.Version, &t.Body, &t.Digest, &t.Current, &t.CreatedAt)
	return t, err
}

// LatestTemplate returns the version of template id the catalog holds now.
// It returns ENOTFOUND when no such template is stored.
func (s *Store) LatestTemplate(ctx context.Context, id string) (Template, error) {
	t, err := scanTemplate(s.pool.QueryRow(ctx, templateQuery+` WHERE t.id = $1 AND v.version = t.current_version AND t.deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Template{}, domain.Errorf(domain.ENOTFOUND, "template %q is not stored", id)
	}
	if err != nil {
		return Template{}, constraintError("reading template "+id, err)
	}
	return t, nil
}

// TemplateVersions returns every stored version of template id, oldest
// first. It returns ENOTFOUND when no such template is stored.
func (s *Store) TemplateVersions(ctx context.Context, id string) ([]Template, error) {
	rows, err := s.pool.Query(ctx, templateQuery+` WHERE t.id = $1 AND t.deleted_at IS NULL ORDER BY v.version`, id)
	if err != nil {
		return nil, constraintError("reading template "+id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Template, error) { return scanTemplate(r) })
	if err != nil {
		return nil, constraintError("reading template "+id, err)
	}
	if len(out) == 0 {
		return nil, domain.Errorf(domain.ENOTFOUND, "template %q is not stored", id)
	}
	return out, nil
}

// DeleteTemplate takes template id out of the catalog: it can no longer be
// read or composed from. Its versions stay for the compositions that used
// them, and storing the template again brings it back. It returns
// ENOTFOUND when no such template is stored (or it is deleted already).
func (s *Store) DeleteTemplate(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE templates SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL`, id)
	if err != nil {
		return constraintError("deleting template "+id, err)
	}
	if tag.RowsAffected() == 0 {
		return domain.Errorf(domain.ENOTFOUND, "template %q is not stored", id)
	}
	return nil
}
