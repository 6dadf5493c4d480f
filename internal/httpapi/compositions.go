package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/manifest"
)

// Planner plans a manifest: retrieval, conflicts, resolution, allocation
// (orchestrator.Plan with the server's catalog, hosts and strategies). An
// infeasible composition comes back with its plan and an EINFEASIBLE
// error.
type Planner interface {
	Plan(ctx context.Context, m *domain.Manifest) (*domain.Plan, error)
}

// createComposition answers POST /v1/compositions. With ?dry_run=true it
// plans synchronously and provisions nothing; durable composition jobs
// (provisioning and instantiation) are not built yet, and say so.
func (s *Server) createComposition(w http.ResponseWriter, r *http.Request) {
	dry := false
	if q := r.URL.Query().Get("dry_run"); q != "" {
		var err error
		if dry, err = strconv.ParseBool(q); err != nil {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, "dry_run: %q: want true or false", q))
			return
		}
	}
	if !dry {
		writeJSON(w, http.StatusNotImplemented, errorBody{Code: "not_implemented",
			Message: "durable compositions (provisioning, instantiation) are not built yet; POST with ?dry_run=true for the plan"})
		return
	}
	if s.planner == nil {
		s.writeError(w, r, domain.Errorf(domain.EUNAVAILABLE, "this server has no planner"))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, r, domain.Errorf(domain.EINVALID, "request body: %v", err))
		return
	}
	m, err := manifest.ParseBytes(body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	plan, err := s.planner.Plan(r.Context(), m)
	s.writeAllocation(w, r, plan, err)
}
