package snapagent

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

const (
	// maxBodyBytes bounds a request body; a capture request is a path.
	maxBodyBytes = 64 << 10
	// maxConcurrentCaptures bounds the walks running at once; more wait.
	maxConcurrentCaptures = 2
	// trailerError names the trailer that says why a streamed capture was
	// cut short.
	trailerError = "Snapagent-Error"
)

// Agent captures paths under its roots and samples the use of the
// processes running from them. Its Handler serves the agentapi protocol; Run
// samples usage. It is safe for concurrent use.
type Agent struct {
	cfg        Config
	roots      []root
	log        *slog.Logger
	tokenSum   [sha256.Size]byte
	cache      *digestCache
	history    *history
	captures   chan struct{} // a semaphore of maxConcurrentCaptures
	cgroupRoot string        // "" when cgroup accounting is off

	// compare compares token digests; a field so a test can see that the
	// constant-time comparison is the one used.
	compare func(x, y []byte) int
	// onOpen, when set, is told every path the agent opens under a root
	// for reading; tests use it to prove that refused paths are never
	// opened.
	onOpen func(path string)
	// racyWindow: a file changed this recently before it was hashed is
	// not remembered (see doc.go).
	racyWindow time.Duration
	// cpuWindow is the shortest span a capture measures CPU use over.
	cpuWindow time.Duration
}

// Handler returns the HTTP handler for the endpoints agentapi documents.
// Every endpoint but /healthz needs the bearer token.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", a.handleHealth)
	mux.Handle("/v1/capture", a.authorized(method(http.MethodPost, a.handleCapture)))
	mux.Handle("/v1/recommend", a.authorized(method(http.MethodGet, a.handleRecommend)))
	mux.Handle("/v1/blobs/{digest}", a.authorized(method(http.MethodGet, a.handleBlob)))
	mux.Handle("/", a.authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, statusError(http.StatusNotFound, domain.ENOTFOUND, "no endpoint %s: see the agentapi package documentation", r.URL.Path))
	})))
	return securityHeaders(mux)
}

func (a *Agent) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintln(w, `{"status":"ok"}`)
}

// authorized lets a request through only with the agent's bearer token. The
// token and the one sent are compared as SHA-256 digests in constant time,
// so neither their contents nor their lengths show in the timing.
func (a *Agent) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="snapagent"`)
			a.writeError(w, r, statusError(http.StatusUnauthorized, domain.EINVALID, "missing bearer token: send \"Authorization: Bearer <token>\""))
			return
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if a.compare(got[:], a.tokenSum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="snapagent", error="invalid_token"`)
			a.writeError(w, r, statusError(http.StatusUnauthorized, domain.EINVALID, "wrong bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// method answers 405 to any method but m.
func method(m string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m {
			w.Header().Set("Allow", m)
			writeJSONError(w, http.StatusMethodNotAllowed, domain.EINVALID, fmt.Sprintf("%s needs %s, not %s", r.URL.Path, m, r.Method))
			return
		}
		h(w, r)
	})
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// httpError is an error with the status it is answered with. Its code is a
// domain error code.
type httpError struct {
	status  int
	code    string
	message string
}

func (e *httpError) Error() string { return e.message }

func statusError(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// statuses maps domain error codes to HTTP statuses, for errors that carry
// no status of their own.
var statuses = map[string]int{
	domain.EINVALID:     http.StatusBadRequest,
	domain.ENOTFOUND:    http.StatusNotFound,
	domain.ECONFLICT:    http.StatusConflict,
	domain.EUNAVAILABLE: http.StatusServiceUnavailable,
}

// writeError answers err as an agentapi.Error. Internal errors are logged
// and answered with a generic message.
func (a *Agent) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := http.StatusInternalServerError, domain.EINTERNAL, "internal error"
	if he, ok := errors.AsType[*httpError](err); ok {
		status, code, msg = he.status, he.code, he.message
	} else if de, ok := errors.AsType[*domain.Error](err); ok {
		code, msg = de.Code, err.Error()
		if s, ok := statuses[de.Code]; ok {
			status = s
		}
	}
	if status >= 500 {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	} else {
		a.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "remote", r.RemoteAddr, "reason", msg)
	}
	writeJSONError(w, status, code, msg)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(agentapi.Error{Code: code, Message: msg})
}
