package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// ModelVersion is a registered model, without its bytes.
type ModelVersion struct {
	Version       string          `json:"version"`
	CreatedAt     time.Time       `json:"created_at"`
	Promoted      bool            `json:"promoted"`
	PromotedAt    *time.Time      `json:"promoted_at,omitempty"`
	FeatureSchema string          `json:"feature_schema"`
	ONNXDigest    string          `json:"onnx_digest"`
	Metrics       json.RawMessage `json:"metrics"`
	Card          json.RawMessage `json:"card,omitempty"`
}

// Promotion is one promotion of a model version.
type Promotion struct {
	Version    string    `json:"version"`
	PromotedAt time.Time `json:"promoted_at"`
	By         string    `json:"by"`
	Reason     string    `json:"reason"`
}

// TrainingRun is one run of the retraining pipeline.
type TrainingRun struct {
	ID           int64           `json:"id"`
	Status       string          `json:"status"`
	CreatedAt    time.Time       `json:"created_at"`
	StartedAt    *time.Time      `json:"started_at,omitempty"`
	FinishedAt   *time.Time      `json:"finished_at,omitempty"`
	DataFrom     *time.Time      `json:"data_from,omitempty"`
	DataTo       *time.Time      `json:"data_to,omitempty"`
	Rows         *int64          `json:"rows,omitempty"`
	Progress     float32         `json:"progress"`
	Metrics      json.RawMessage `json:"metrics"`
	Error        string          `json:"error,omitempty"`
	ModelVersion string          `json:"model_version,omitempty"`
}

// TrainingRequest asks for a training run over the history created in
// [from, to) (open ends when unset); promote promotes its model whatever
// the champion/challenger comparison says.
type TrainingRequest struct {
	From    *time.Time `json:"from,omitempty"`
	To      *time.Time `json:"to,omitempty"`
	Promote bool       `json:"promote,omitempty"`
	// RealWeight: how many times a real composition's decision counts
	// against a simulated one's (0: the default).
	RealWeight int `json:"real_weight,omitempty"`
}

// Models is the model registry.
type Models interface {
	List(ctx context.Context) ([]ModelVersion, error)
	Get(ctx context.Context, version string) (ModelVersion, error)
	// Promote makes version serve; by names who asked.
	Promote(ctx context.Context, version, by string) error
	// Rollback promotes the version that served before, and names it.
	Rollback(ctx context.Context, by string) (string, error)
	Promotions(ctx context.Context) ([]Promotion, error)
	// StartTraining starts a run in the background and returns it as soon
	// as it is recorded; ECONFLICT while another runs in this process.
	StartTraining(ctx context.Context, req TrainingRequest, by string) (TrainingRun, error)
	TrainingRun(ctx context.Context, id int64) (TrainingRun, error)
}

func caller(r *http.Request) string {
	tok, _ := r.Context().Value(principalKey{}).(Token)
	return tok.Name
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Models.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	v, err := s.Models.Get(r.Context(), chi.URLParam(r, "version"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) promoteModel(w http.ResponseWriter, r *http.Request) {
	version := chi.URLParam(r, "version")
	if err := s.Models.Promote(r.Context(), version, caller(r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.getModel(w, r)
}

func (s *Server) rollbackModel(w http.ResponseWriter, r *http.Request) {
	version, err := s.Models.Rollback(r.Context(), caller(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.Models.Get(r.Context(), version)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) listPromotions(w http.ResponseWriter, r *http.Request) {
	ps, err := s.Models.Promotions(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"promotions": ps})
}

func (s *Server) startTraining(w http.ResponseWriter, r *http.Request) {
	var req TrainingRequest
	if r.ContentLength != 0 { // the body is optional: every field has a default
		if err := decodeBody(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if req.RealWeight < 0 || req.RealWeight > 100 {
		s.writeError(w, r, domain.Errorf(domain.EINVALID, "/real_weight: %d: want 1 to 100 (0 for the default)", req.RealWeight))
		return
	}
	run, err := s.Models.StartTraining(r.Context(), req, caller(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/training-runs/"+strconv.FormatInt(run.ID, 10))
	writeJSON(w, http.StatusAccepted, run)
}

func (s *Server) getTrainingRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id < 1 {
		s.writeError(w, r, domain.Errorf(domain.EINVALID, "training run id %q: want a number from 1", chi.URLParam(r, "id")))
		return
	}
	run, err := s.Models.TrainingRun(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}
