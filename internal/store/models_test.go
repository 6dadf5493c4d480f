package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

func model(version string, onnx []byte) store.ModelVersion {
	return store.ModelVersion{
		Version:       version,
		Card:          json.RawMessage(`{"name": "negotiator", "version": "` + version + `", "features": ["a", "b"]}`),
		Metrics:       json.RawMessage(`{"auc": 0.91, "log_loss": 0.3}`),
		ONNX:          onnx,
		FeatureSchema: featureSchema,
	}
}

func TestModelVersions(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	if _, err := st.PromotedModel(ctx); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("PromotedModel with none: got %v, want ENOTFOUND", err)
	}
	a, err := st.InsertModelVersion(ctx, model("2025.01", []byte("onnx bytes a")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.InsertModelVersion(ctx, model("2025.02", []byte("onnx bytes b")))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.ONNXDigest != domain.Digest([]byte("onnx bytes a")) || a.Promoted || a.CreatedAt.IsZero() {
		t.Errorf("inserted %+v", a)
	}

	for _, step := range []struct {
		promote string
		want    store.ModelVersion
	}{
		{promote: "2025.01", want: a},
		{promote: "2025.02", want: b},
		{promote: "2025.02", want: b}, // again: nothing changes
		{promote: "2025.01", want: a},
	} {
		if err := st.PromoteModel(ctx, step.promote); err != nil {
			t.Fatal(err)
		}
		got, err := st.PromotedModel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != step.want.ID || got.Version != step.want.Version || string(got.ONNX) != string(step.want.ONNX) ||
			got.ONNXDigest != step.want.ONNXDigest || got.FeatureSchema != featureSchema || !got.Promoted || got.PromotedAt == nil ||
			!jsonEqual(t, got.Card, step.want.Card) || !jsonEqual(t, got.Metrics, step.want.Metrics) {
			t.Errorf("after promoting %s: got %+v", step.promote, got)
		}
		list, err := st.ListModelVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		promoted := 0
		for _, m := range list {
			if m.ONNX != nil {
				t.Errorf("ListModelVersions returned the bytes of %s", m.Version)
			}
			if m.Promoted {
				promoted++
			}
		}
		if len(list) != 2 || promoted != 1 || list[0].Version != "2025.02" {
			t.Errorf("got list %+v, want 2 versions newest first, one promoted", list)
		}
	}
	wantError(t, st.PromoteModel(ctx, "1999"), domain.ENOTFOUND, "1999")
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, x) == mustJSON(t, y)
}

func TestTrainingRuns(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	run, err := st.CreateTrainingRun(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != store.TrainingQueued || !run.DataFrom.Equal(from) || !run.DataTo.Equal(to) || run.StartedAt != nil || run.Progress != 0 {
		t.Errorf("created %+v", run)
	}
	m, err := st.InsertModelVersion(ctx, model("trained", []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	steps := []store.TrainingUpdate{
		{Status: store.TrainingRunning},
		{Progress: ptr[float32](0.5), Rows: ptr[int64](12345)},
		{Progress: ptr[float32](1), Metrics: json.RawMessage(`{"auc": 0.9}`), ModelVersionID: &m.ID, Status: store.TrainingSucceeded},
	}
	for _, u := range steps {
		if run, err = st.UpdateTrainingRun(ctx, run.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.TrainingRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.TrainingSucceeded || got.StartedAt == nil || got.FinishedAt == nil || got.Progress != 1 ||
		got.Rows == nil || *got.Rows != 12345 || got.ModelVersionID == nil || *got.ModelVersionID != m.ID ||
		!jsonEqual(t, got.Metrics, json.RawMessage(`{"auc": 0.9}`)) || got.Error != "" {
		t.Errorf("got %+v", got)
	}
	if mustJSON(t, got) != mustJSON(t, run) {
		t.Errorf("TrainingRun = %+v, UpdateTrainingRun returned %+v", got, run)
	}
	_, err = st.UpdateTrainingRun(ctx, run.ID, store.TrainingUpdate{Progress: ptr[float32](0.1)})
	wantError(t, err, domain.ECONFLICT, "succeeded")
	_, err = st.UpdateTrainingRun(ctx, 999999, store.TrainingUpdate{Status: store.TrainingRunning})
	wantError(t, err, domain.ENOTFOUND)
	_, err = st.TrainingRun(ctx, 999999)
	wantError(t, err, domain.ENOTFOUND)

	// A failure records its error.
	open, err := st.CreateTrainingRun(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	failed, err := st.UpdateTrainingRun(ctx, open.ID, store.TrainingUpdate{Status: store.TrainingFailed, Error: "no data"})
	if err != nil || failed.Error != "no data" || failed.FinishedAt == nil || failed.DataFrom != nil {
		t.Errorf("got %+v, %v", failed, err)
	}
}
