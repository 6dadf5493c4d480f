package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// TemplateVersion is one stored version of a catalog template.
type TemplateVersion struct {
	ID          string    `json:"id"`
	Version     int       `json:"version"`
	Description string    `json:"description"`
	Tags        []string  `json:"tags"`
	Digest      string    `json:"digest"`
	Current     bool      `json:"current"`
	CreatedAt   time.Time `json:"created_at"`
	Body        string    `json:"body,omitempty"`
}

// Templates is the catalog in Postgres: a template is a Compose file with
// its x-snapcompose block, validated exactly as a catalog file is.
type Templates interface {
	// Put validates body as template id and stores it; an unchanged body
	// keeps its version.
	Put(ctx context.Context, id string, body []byte) (TemplateVersion, error)
	// Get returns version v of template id (0: the current one).
	Get(ctx context.Context, id string, v int) (TemplateVersion, error)
	// Versions lists template id's versions, oldest first, without bodies.
	Versions(ctx context.Context, id string) ([]TemplateVersion, error)
	// Delete takes template id out of the catalog; its versions stay for
	// the history, and a Put brings it back.
	Delete(ctx context.Context, id string) error
}

func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	if err := s.Templates.Delete(r.Context(), chi.URLParam(r, "id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) putTemplate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, r, domain.Errorf(domain.EINVALID, "request body: %v", err))
		return
	}
	t, err := s.Templates.Put(r.Context(), chi.URLParam(r, "id"), body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t.Body = ""
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	v := 0
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, "version: %q: want a version number from 1", q))
			return
		}
		v = n
	}
	t, err := s.Templates.Get(r.Context(), chi.URLParam(r, "id"), v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) templateVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Templates.Versions(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
}
