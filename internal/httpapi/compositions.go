package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

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

// Compositions are durable compositions: recorded, queued as jobs, carried
// out by whichever server process takes them.
type Compositions interface {
	// Submit records m (sent as raw) and queues its job. key is the
	// client's idempotency key, scoped to its token ("" for none), and
	// digest identifies the request: a repeat of the same request answers
	// with the first one's id and replayed; the key with another request
	// is ECONFLICT.
	Submit(ctx context.Context, m *domain.Manifest, raw []byte, key, digest string) (id string, replayed bool, err error)
	// Get returns composition id as it stands.
	Get(ctx context.Context, id string) (*Composition, error)
	// Cancel cancels composition id (ECONFLICT when it has finished).
	Cancel(ctx context.Context, id string) error
	// Archive writes composition id's environment as a gzipped tarball;
	// ENOTFOUND when it is not materialised where this server can read it.
	Archive(ctx context.Context, id string, w io.Writer) error
	// List pages through the compositions, newest first, without plans.
	List(ctx context.Context, f CompositionFilter) (CompositionPage, error)
	// Release tears a finished composition down (its capacity back to the
	// pool, its directory removed); one still running is cancelled
	// instead, and cancelling is true.
	Release(ctx context.Context, id string) (cancelling bool, err error)
}

// CompositionFilter selects compositions to list; zero fields select all.
type CompositionFilter struct {
	From, To time.Time
	Strategy domain.Strategy
	Status   string
	Limit    int
	Cursor   string
}

// CompositionPage is a page of a listing.
type CompositionPage struct {
	Compositions []*Composition `json:"compositions"`
	NextCursor   string         `json:"next_cursor,omitempty"`
}

// Composition is a durable composition as the API shows it.
type Composition struct {
	ID           string           `json:"id"`
	Name         string           `json:"name"`
	Strategy     domain.Strategy  `json:"strategy"`
	Status       string           `json:"status"`
	Error        string           `json:"error,omitempty"`
	Feasible     *bool            `json:"feasible,omitempty"`
	Timings      map[string]int64 `json:"timings_ms"`
	Pool         string           `json:"pool,omitempty"`
	Output       string           `json:"output,omitempty"`
	ModelVersion string           `json:"model_version,omitempty"`
	Job          *Job             `json:"job,omitempty"`
	Plan         *domain.Plan     `json:"plan,omitempty"`
	CreatedAt    time.Time        `json:"created_at"`
	UpdatedAt    time.Time        `json:"updated_at"`
	FinishedAt   *time.Time       `json:"finished_at,omitempty"`
	ReleasedAt   *time.Time       `json:"released_at,omitempty"`
}

// Job is a composition's job in the queue.
type Job struct {
	ID          int64    `json:"id"`
	State       string   `json:"state"`
	Attempt     int      `json:"attempt"`
	MaxAttempts int      `json:"max_attempts"`
	AttemptedBy []string `json:"attempted_by"`
	Errors      []string `json:"errors,omitempty"`
}

// idempotencyKeyMax is the longest Idempotency-Key accepted.
const idempotencyKeyMax = 200

// createComposition answers POST /v1/compositions: 202 with the new
// composition's id, its job queued; with ?dry_run=true the plan,
// synchronously, with nothing recorded or provisioned.
func (s *Server) createComposition(w http.ResponseWriter, r *http.Request) {
	dry := false
	if q := r.URL.Query().Get("dry_run"); q != "" {
		var err error
		if dry, err = strconv.ParseBool(q); err != nil {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, "dry_run: %q: want true or false", q))
			return
		}
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > idempotencyKeyMax {
		s.writeError(w, r, domain.Errorf(domain.EINVALID, "Idempotency-Key: %d bytes; at most %d are accepted", len(key), idempotencyKeyMax))
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
	if dry {
		if s.Planner == nil {
			s.writeError(w, r, domain.Errorf(domain.EUNAVAILABLE, "this server has no planner"))
			return
		}
		plan, err := s.Planner.Plan(r.Context(), m)
		s.writeAllocation(w, r, plan, err)
		return
	}
	if s.Compositions == nil {
		s.writeError(w, r, domain.Errorf(domain.EUNAVAILABLE, "this server does not run compositions; POST with ?dry_run=true for the plan"))
		return
	}
	scoped := ""
	if key != "" {
		name := caller(r)
		scoped = fmt.Sprintf("%d:%s:%s", len(name), name, key) // one token's keys are not another's
	}
	id, replayed, err := s.Compositions.Submit(r.Context(), m, body, scoped, domain.Digest(body))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/compositions/"+id)
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	c, err := s.Compositions.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, c)
}

func (s *Server) getComposition(w http.ResponseWriter, r *http.Request) {
	c, err := s.Compositions.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) cancelComposition(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	s.answerWith(w, r, id, http.StatusAccepted, s.Compositions.Cancel(r.Context(), id))
}

// answerWith answers an operation on composition id: its error, or the
// composition as it stands with status.
func (s *Server) answerWith(w http.ResponseWriter, r *http.Request, id string, status int, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.Compositions.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, c)
}

func (s *Server) compositionArchive(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	c, err := s.Compositions.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if c.Output == "" {
		s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "composition %s is %s: it has no environment yet", id, c.Status))
		return
	}
	// Written to a file first: a failure half way must be an error
	// status, not a truncated archive.
	f, err := os.CreateTemp("", "snapcompose-archive-*.tar.gz")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := s.Compositions.Archive(r.Context(), id, f); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.tar.gz"`)
	http.ServeContent(w, r, "", c.UpdatedAt, f)
}

// listCompositions answers GET /v1/compositions: newest first, a page at a
// time, filtered by status, strategy and creation time.
func (s *Server) listCompositions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := CompositionFilter{Strategy: domain.Strategy(q.Get("strategy")), Status: q.Get("status"), Cursor: q.Get("cursor")}
	for name, t := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				s.writeError(w, r, domain.Errorf(domain.EINVALID, "%s: %q is not an RFC 3339 time such as 2026-11-27T00:00:00Z", name, v))
				return
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, "limit: %q: want a number from 1", v))
			return
		}
		f.Limit = n
	}
	page, err := s.Compositions.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// releaseComposition answers DELETE /v1/compositions/{id}: a finished
// composition is torn down (200); a running one is cancelled (202).
func (s *Server) releaseComposition(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	cancelling, err := s.Compositions.Release(r.Context(), id)
	status := http.StatusOK
	if cancelling {
		status = http.StatusAccepted
	}
	s.answerWith(w, r, id, status, err)
}
