// Package httpapi serves snapcompose over HTTP with chi: health and
// readiness today, the compose and history API as they are built.
package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Readiness is what /readyz asks: can the service do its work now?
type Readiness interface {
	// Ready returns nil when the database answers with the expected schema,
	// and EUNAVAILABLE saying what is wrong otherwise.
	Ready(ctx context.Context) error
}

// AgentStatus is what GET /v1/agent says of the AI_AGENT model.
type AgentStatus struct {
	// ModelVersion is the registry's version serving (or "file:PATH").
	ModelVersion  string    `json:"model_version"`
	FeatureSchema string    `json:"feature_schema,omitempty"`
	LoadedAt      time.Time `json:"loaded_at,omitzero"`
	// Error says why AI_AGENT is unavailable; empty when it serves.
	Error string `json:"error,omitempty"`
}

// Agent is AI_AGENT in the server: the model's status, and the resolver
// (or why there is none).
type Agent interface {
	Status() AgentStatus
	Resolver() (domain.Resolver, error)
}

// Server is the HTTP API.
type Server struct {
	Config
	router  chi.Router
	metrics *metrics
}

// Config is what the server serves with.
type Config struct {
	Ready     Readiness
	Agent     Agent     // nil: no AI_AGENT
	Planner   Planner   // nil: no compositions
	Templates Templates // nil: no catalog in Postgres
	// Compositions run durable compositions; nil: dry runs only.
	Compositions Compositions
	// Monitoring takes outcomes and usage back; nil: not served.
	Monitoring Monitoring
	// Models is the model registry; nil: not served.
	Models Models
	// History is the history for analysts; nil: not served.
	History History
	// UI is the dashboard, mounted at /ui; nil: not served.
	UI     http.Handler
	Tokens *Tokens // who may call /v1; nil accepts no token
	Logger *slog.Logger
}

// openAPI is the API's OpenAPI 3 document, served at /openapi.yaml; the
// tests validate every request and response against it.
//
//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3 document.
func OpenAPI() []byte { return openAPI }

// maxBody bounds a request body.
const maxBody = 1 << 20

// New returns the API's handler. Health, readiness, metrics and the
// document are open; everything under /v1 needs a bearer token whose role
// allows it.
func New(cfg Config) *Server {
	if cfg.Tokens == nil {
		cfg.Tokens, _ = NewTokens()
	}
	s := &Server{Config: cfg, router: chi.NewRouter(), metrics: newMetrics()}
	s.router.Use(middleware.RequestID, middleware.RealIP, s.logRequests, s.metrics.observe, middleware.Recoverer, limitBody)
	s.router.Get("/healthz", s.healthz)
	s.router.Get("/readyz", s.readyz)
	s.router.Get("/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
	s.router.Method(http.MethodGet, "/metrics", s.metrics.handler())
	if cfg.UI != nil {
		s.router.Get("/ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusMovedPermanently) })
		s.router.Mount("/ui", cfg.UI)
	}
	s.router.Route("/v1", func(v1 chi.Router) {
		v1.Use(s.authenticate)
		v1.With(require(Analyst)).Get("/agent", s.agentStatus)
		v1.With(require(Composer)).Post("/conflicts/resolve", s.resolveConflict)
		v1.With(require(Composer)).Post("/allocations/optimize", s.optimizeAllocation)
		v1.With(require(Composer)).Post("/compositions", s.createComposition)
		if s.Compositions != nil {
			v1.With(require(Analyst)).Get("/compositions", s.listCompositions)
			v1.With(require(Analyst)).Get("/compositions/{id}", s.getComposition)
			v1.With(require(Composer)).Delete("/compositions/{id}", s.releaseComposition)
			v1.With(require(Composer)).Post("/compositions/{id}/cancel", s.cancelComposition)
			v1.With(require(Composer)).Get("/compositions/{id}/archive", s.compositionArchive)
		}
		if s.Monitoring != nil {
			v1.With(require(Composer)).Post("/compositions/{id}/outcome", s.reportOutcome)
			v1.With(require(Analyst)).Get("/compositions/{id}/outcomes", s.listOutcomes)
			v1.With(require(Composer)).Post("/compositions/{id}/usage", s.reportUsage)
		}
		if s.History != nil {
			v1.With(require(Analyst)).Get("/history/compositions", s.historyCompositions)
			v1.With(require(Analyst)).Get("/history/conflicts", s.historyConflicts)
			v1.With(require(Analyst)).Get("/history/summary", s.historySummary)
		}
		if s.Models != nil {
			v1.With(require(Analyst)).Get("/models", s.listModels)
			v1.With(require(Analyst)).Get("/models/promotions", s.listPromotions)
			v1.With(require(Admin)).Post("/models/rollback", s.rollbackModel)
			v1.With(require(Analyst)).Get("/models/{version}", s.getModel)
			v1.With(require(Admin)).Post("/models/{version}/promote", s.promoteModel)
			v1.With(require(Admin)).Post("/training-runs", s.startTraining)
			v1.With(require(Analyst)).Get("/training-runs/{id}", s.getTrainingRun)
		}
		if s.Templates != nil {
			v1.With(require(Analyst)).Get("/templates/{id}", s.getTemplate)
			v1.With(require(Analyst)).Get("/templates/{id}/versions", s.templateVersions)
			v1.With(require(Admin)).Put("/templates/{id}", s.putTemplate)
			v1.With(require(Admin)).Delete("/templates/{id}", s.deleteTemplate)
		}
	})
	s.router.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.Ready.Ready(ctx); err != nil {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": domain.ErrorMessage(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": "ok"})
}

// limitBody refuses a request body over maxBody: reading past it fails,
// and a declared length over it is answered 413 at once.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Code: domain.EINVALID,
				Message: fmt.Sprintf("request body of %d bytes: at most %d are accepted", r.ContentLength, maxBody)})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// agentStatus answers GET /v1/agent: the model serving AI_AGENT, or 503
// with the reason none does.
func (s *Server) agentStatus(w http.ResponseWriter, r *http.Request) {
	if s.Agent == nil {
		s.writeError(w, r, domain.Errorf(domain.EUNAVAILABLE, "AI_AGENT is not configured in this server"))
		return
	}
	st := s.Agent.Status()
	if st.Error != "" || st.ModelVersion == "" {
		writeJSON(w, http.StatusServiceUnavailable, st)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// statuses maps error codes to HTTP statuses; anything else is a 500.
var statuses = map[string]int{
	domain.EINVALID:     http.StatusBadRequest,
	domain.ENOTFOUND:    http.StatusNotFound,
	domain.ECONFLICT:    http.StatusConflict,
	domain.EINFEASIBLE:  http.StatusUnprocessableEntity,
	domain.EUNAVAILABLE: http.StatusServiceUnavailable,
	domain.EPARTIAL:     http.StatusMultiStatus,
}

type errorBody struct {
	Code     string           `json:"code"`
	Message  string           `json:"message"`
	Problems []domain.Problem `json:"problems,omitempty"`
}

// writeError answers with err's status and message. Internal errors are
// logged with the request id and answered without their details.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := domain.ErrorCode(err)
	status, ok := statuses[code]
	if !ok {
		status = http.StatusInternalServerError
		s.Logger.Error("internal error", "request_id", middleware.GetReqID(r.Context()), "error", err.Error())
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5") // the database or a model may be back shortly
	}
	body := errorBody{Code: code, Message: domain.ErrorMessage(err)}
	var e *domain.Error
	if ok && errors.As(err, &e) {
		body.Message, body.Problems = e.Message, e.Problems
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		s.Logger.Info("request", "request_id", middleware.GetReqID(r.Context()), "method", r.Method,
			"path", r.URL.Path, "status", ww.Status(), "duration_ms", time.Since(start).Milliseconds())
	})
}
