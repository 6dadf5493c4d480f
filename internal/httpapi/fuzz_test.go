package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Fakes of the parts below the HTTP layer: the fuzzer is after the API's
// own parsing and checks (the real parts have their own tests).
type fuzzReady struct{}

func (fuzzReady) Ready(context.Context) error { return nil }

type fuzzBelow struct{}

func (fuzzBelow) Plan(context.Context, *domain.Manifest) (*domain.Plan, error) {
	return nil, domain.Errorf(domain.EUNAVAILABLE, "no planner in the fuzzer")
}
func (fuzzBelow) Submit(context.Context, *domain.Manifest, []byte, string, string) (string, bool, error) {
	return "", false, domain.Errorf(domain.EUNAVAILABLE, "no queue in the fuzzer")
}
func (fuzzBelow) Get(context.Context, string) (*Composition, error) {
	return nil, domain.Errorf(domain.ENOTFOUND, "none")
}
func (fuzzBelow) Cancel(context.Context, string) error             { return nil }
func (fuzzBelow) Archive(context.Context, string, io.Writer) error { return nil }
func (fuzzBelow) Release(context.Context, string) (bool, error)    { return false, nil }
func (fuzzBelow) List(context.Context, CompositionFilter) (CompositionPage, error) {
	return CompositionPage{}, nil
}
func (fuzzBelow) ReportOutcome(_ context.Context, _ string, o OutcomeReport) (OutcomeReport, error) {
	return o, nil
}
func (fuzzBelow) Outcomes(context.Context, string) ([]OutcomeReport, error) { return nil, nil }
func (fuzzBelow) ReportUsage(context.Context, string, UsageReport) (UsageResult, error) {
	return UsageResult{}, nil
}

// FuzzAPIBodies posts arbitrary bodies to every endpoint that reads one
// and wants no 5xx other than the fakes' 503, and no panic.
func FuzzAPIBodies(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/bad/api/*.http")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		if _, body, ok := strings.Cut(string(raw), "\n\n"); ok {
			f.Add(uint8(len(file)), []byte(body))
		}
	}
	f.Add(uint8(2), []byte(`{"verdict": "healthy", "services": [{"service": "api", "healthy": true, "latency_ms": 3, "error_rate": 0.1}]}`))
	f.Add(uint8(3), []byte(`{"service": "api", "interval_seconds": 60, "samples": [{"at": "2026-11-27T00:00:00Z", "cpu_millicores": 5, "memory_bytes": 9}]}`))
	f.Add(uint8(5), []byte(`{"request1": {"source": "a", "services": [{"name": "x", "requested": {"cpu": "1", "memory": "1GB", "disk": "1GB"}}]},
		"request2": {"source": "b", "services": [{"name": "x", "requested": {"cpu": "2", "memory": "1GB", "disk": "1GB"}}]},
		"limits": {"cpu": "2", "memory": "2GB", "disk": "2GB"}, "conflict_resolution": "PRIORITY"}`))
	tokens, err := NewTokens(Token{Name: "fuzz", Role: Admin, SHA256: HashToken("fuzz-token-0123456789")})
	if err != nil {
		f.Fatal(err)
	}
	tokens.Rate, tokens.Burst = 1e12, 1e12
	var below fuzzBelow
	s := New(Config{Ready: fuzzReady{}, Planner: below, Compositions: below, Monitoring: below, Tokens: tokens,
		Logger: slog.New(slog.DiscardHandler)})
	endpoints := []string{
		"/v1/compositions?dry_run=true", "/v1/compositions",
		"/v1/compositions/00000000-0000-0000-0000-000000000000/outcome",
		"/v1/compositions/00000000-0000-0000-0000-000000000000/usage",
		"/v1/allocations/optimize", "/v1/conflicts/resolve",
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := endpoints[int(which)%len(endpoints)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer fuzz-token-0123456789")
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST %s %q = %d %s", path, body, w.Code, w.Body)
		}
	})
}
