package live_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// recommendHandler answers GET /v1/recommend?path=testPath with recs.
func recommendHandler(t *testing.T, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/recommend" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(agentapi.Error{Code: "unauthorized", Message: "bad token"})
			return
		}
		if got := r.URL.Query().Get("path"); got != testPath {
			t.Errorf("recommend path = %q, want %q", got, testPath)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

func TestConcede(t *testing.T) {
	t.Parallel()
	recs, _ := json.Marshal(sampleCapture().Recommendations)
	a := newAgent(t, recommendHandler(t, string(recs)))
	offers, err := setup(t, a.URL, "").Concede(context.Background(), liveSource(), []string{"api", "worker"})
	if err != nil {
		t.Fatalf("Concede: %v", err)
	}
	if len(offers) != 1 {
		t.Fatalf("offers = %+v, want one for api (worker has no recommendation)", offers)
	}
	o := offers[0]
	want := domain.Resources{CPUMillicores: 150, MemoryBytes: 96 << 20, DiskBytes: math.MaxInt64}
	if o.Service != "api" || o.Minimum != want {
		t.Errorf("offer = %+v, want api at %+v", o, want)
	}
	for _, frag := range []string{testHost, "150m", "96MiB", "p90 + 15%"} {
		if !strings.Contains(o.Basis, frag) {
			t.Errorf("basis %q does not say %q", o.Basis, frag)
		}
	}
}

func TestConcedeFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    []string
	}{
		{"malformed", recommendHandler(t, `{"not": "an array"}`), []string{testHost, "cannot be decoded"}},
		{"negative", recommendHandler(t, `[{"service":"api","min_cpu_millicores":-1}]`), []string{testHost, "negative"}},
		{"trailing data", recommendHandler(t, `[] []`), []string{testHost, "after its recommendation"}},
		{"refused", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(agentapi.Error{Code: "forbidden", Message: "path not allowed"})
		}, []string{testHost, "path not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAgent(t, tt.handler)
			_, err := setup(t, a.URL, "").Concede(context.Background(), liveSource(), []string{"api"})
			if domain.ErrorCode(err) != domain.EUNAVAILABLE {
				t.Fatalf("error %v: want code %s", err, domain.EUNAVAILABLE)
			}
			for _, frag := range tt.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not say %q", err, frag)
				}
			}
		})
	}
}
