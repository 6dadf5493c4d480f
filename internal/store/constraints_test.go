package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

// TestConstraintViolations checks that what the schema refuses comes back
// as an application error with the right code, naming the constraint. Each
// case builds what it needs under its own names, so all share one database.
func TestConstraintViolations(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	// raw runs SQL the store has no operation for, mapping its error the
	// way the store does.
	raw := func(ctx context.Context, sql string, args ...any) error {
		_, err := st.Pool().Exec(ctx, sql, args...)
		if err != nil {
			return store.ConstraintError("test", err)
		}
		return nil
	}
	tests := []struct {
		name       string
		violate    func(t *testing.T) error
		code       string
		constraint string
	}{
		{name: "negative pool cpu", code: domain.EINVALID, constraint: "capacity_pools_cpu_millicores_check",
			violate: func(t *testing.T) error {
				return st.UpsertPool(ctx, "neg", domain.Resources{CPUMillicores: -1, MemoryBytes: 1, DiskBytes: 1})
			}},
		{name: "zero pool memory", code: domain.EINVALID, constraint: "capacity_pools_memory_bytes_check",
			violate: func(t *testing.T) error {
				return st.UpsertPool(ctx, "zero", domain.Resources{CPUMillicores: 1, DiskBytes: 1})
			}},
		{name: "negative reservation", code: domain.EINVALID, constraint: "reservations_disk_bytes_check",
			violate: func(t *testing.T) error {
				if err := st.UpsertPool(ctx, "p-neg", domain.Resources{CPUMillicores: 1, MemoryBytes: 1, DiskBytes: 1}); err != nil {
					t.Fatal(err)
				}
				_, err := st.Reserve(ctx, "p-neg", newComposition(t, st, newFixture()), domain.Resources{DiskBytes: -5})
				return err
			}},
		{name: "reservation for an unknown composition", code: domain.ENOTFOUND, constraint: "reservations_composition_id_fkey",
			violate: func(t *testing.T) error {
				if err := st.UpsertPool(ctx, "p-fk", domain.Resources{CPUMillicores: 1, MemoryBytes: 1, DiskBytes: 1}); err != nil {
					t.Fatal(err)
				}
				_, err := st.Reserve(ctx, "p-fk", randomUUID(), domain.Resources{CPUMillicores: 1})
				return err
			}},
		{name: "second promoted model", code: domain.ECONFLICT, constraint: "model_versions_one_promoted",
			violate: func(t *testing.T) error {
				for _, v := range []string{"promo-a", "promo-b"} {
					if _, err := st.InsertModelVersion(ctx, model(v, []byte(v))); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.PromoteModel(ctx, "promo-a"); err != nil {
					t.Fatal(err)
				}
				return raw(ctx, `UPDATE model_versions SET promoted = true, promoted_at = now() WHERE version = 'promo-b'`)
			}},
		{name: "duplicate model version", code: domain.ECONFLICT, constraint: "model_versions_version_key",
			violate: func(t *testing.T) error {
				if _, err := st.InsertModelVersion(ctx, model("dup", []byte("1"))); err != nil {
					t.Fatal(err)
				}
				_, err := st.InsertModelVersion(ctx, model("dup", []byte("2")))
				return err
			}},
		{name: "model digest not of its bytes", code: domain.EINVALID, constraint: "model_versions_onnx_digest_check",
			violate: func(t *testing.T) error {
				m := model("liar", []byte("real bytes"))
				m.ONNXDigest = domain.Digest([]byte("other bytes"))
				_, err := st.InsertModelVersion(ctx, m)
				return err
			}},
		{name: "model card not an object", code: domain.EINVALID, constraint: "model_versions_card_check",
			violate: func(t *testing.T) error {
				m := model("card", []byte("x"))
				m.Card = json.RawMessage(`[1, 2]`)
				_, err := st.InsertModelVersion(ctx, m)
				return err
			}},
		{name: "training progress above 1", code: domain.EINVALID, constraint: "training_runs_progress_check",
			violate: func(t *testing.T) error {
				run, err := st.CreateTrainingRun(ctx, testTime(0), testTime(1))
				if err != nil {
					t.Fatal(err)
				}
				_, err = st.UpdateTrainingRun(ctx, run.ID, store.TrainingUpdate{Progress: ptr[float32](1.5)})
				return err
			}},
		{name: "training failed without an error", code: domain.EINVALID, constraint: "training_runs_error_check",
			violate: func(t *testing.T) error {
				run, err := st.CreateTrainingRun(ctx, testTime(0), testTime(1))
				if err != nil {
					t.Fatal(err)
				}
				_, err = st.UpdateTrainingRun(ctx, run.ID, store.TrainingUpdate{Status: store.TrainingFailed})
				return err
			}},
		{name: "training window backwards", code: domain.EINVALID, constraint: "training_runs_data_window_check",
			violate: func(t *testing.T) error {
				_, err := st.CreateTrainingRun(ctx, testTime(2), testTime(1))
				return err
			}},
		{name: "training run of an unknown model", code: domain.ENOTFOUND, constraint: "training_runs_model_version_id_fkey",
			violate: func(t *testing.T) error {
				run, err := st.CreateTrainingRun(ctx, testTime(0), testTime(1))
				if err != nil {
					t.Fatal(err)
				}
				_, err = st.UpdateTrainingRun(ctx, run.ID, store.TrainingUpdate{ModelVersionID: ptr[int64](987654)})
				return err
			}},
		{name: "bad composition status", code: domain.EINVALID, constraint: "compositions_status_check",
			violate: func(t *testing.T) error {
				return st.SetCompositionStatus(ctx, newComposition(t, st, newFixture()), store.StatusUpdate{Status: "done-ish"})
			}},
		{name: "second chosen candidate", code: domain.ECONFLICT, constraint: "candidates_one_chosen",
			violate: func(t *testing.T) error {
				id, _ := planned(t, st, newFixture(), false)
				return raw(ctx, `
					UPDATE candidates SET chosen = true WHERE rejected IS NULL AND conflict_id = (
						SELECT c.conflict_id FROM candidates c JOIN conflicts cf ON cf.id = c.conflict_id
						WHERE cf.composition_id = $1 AND c.rejected IS NULL GROUP BY c.conflict_id HAVING count(*) > 1 LIMIT 1)`, id)
			}},
		{name: "a rejected candidate chosen", code: domain.EINVALID, constraint: "candidates_chosen_check",
			violate: func(t *testing.T) error {
				id, _ := planned(t, st, newFixture(), false)
				return raw(ctx, `
					UPDATE candidates c SET chosen = true FROM conflicts cf
					WHERE cf.id = c.conflict_id AND cf.composition_id = $1 AND c.rejected IS NOT NULL`, id)
			}},
		{name: "source ref not matching its type", code: domain.EINVALID, constraint: "composition_sources_ref_check",
			violate: func(t *testing.T) error {
				id := newComposition(t, st, newFixture())
				return raw(ctx, `INSERT INTO composition_sources (composition_id, position, ref, type) VALUES ($1, 9, 'template:x', 'live')`, id)
			}},
		{name: "finished without finished_at", code: domain.EINVALID, constraint: "compositions_finished_check",
			violate: func(t *testing.T) error {
				id := newComposition(t, st, newFixture())
				return raw(ctx, `UPDATE compositions SET status = 'succeeded' WHERE id = $1`, id)
			}},
		{name: "snapshot of a source not in the composition", code: domain.ENOTFOUND, constraint: "snapshots_source_fkey",
			violate: func(t *testing.T) error {
				id := newComposition(t, st, newFixture())
				return raw(ctx, `INSERT INTO snapshots (composition_id, position, digest, body, captured_at) VALUES ($1, 7, $2, '{}', now())`,
					id, domain.Digest(nil))
			}},
		{name: "template version zero", code: domain.EINVALID, constraint: "template_versions_version_check",
			violate: func(t *testing.T) error {
				if _, err := st.UpsertTemplate(ctx, store.Template{ID: "zero", Body: "x"}); err != nil {
					t.Fatal(err)
				}
				return raw(ctx, `INSERT INTO template_versions (template_id, version, body, digest) VALUES ('zero', 0, 'y', $1)`, domain.Digest([]byte("y")))
			}},
		{name: "deleting a pool with reservations", code: domain.ECONFLICT, constraint: "reservations_pool_fkey",
			violate: func(t *testing.T) error {
				if err := st.UpsertPool(ctx, "p-del", domain.Resources{CPUMillicores: 1, MemoryBytes: 1, DiskBytes: 1}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.Reserve(ctx, "p-del", newComposition(t, st, newFixture()), domain.Resources{CPUMillicores: 1}); err != nil {
					t.Fatal(err)
				}
				return raw(ctx, `DELETE FROM capacity_pools WHERE name = 'p-del'`)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, tt.violate(t), tt.code, tt.constraint)
		})
	}
}
