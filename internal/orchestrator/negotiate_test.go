package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/hosts"
	"github.com/snapcompose/snapcompose/internal/live"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
	"github.com/snapcompose/snapcompose/internal/plantest"
)

const agentToken = "negotiation-test-token-0123456789"

// loopbackAgent serves the snapagent protocol on loopback: a capture of one
// service, api, whose recommendation is rec, and that recommendation again
// on /v1/recommend (or status when it is not 200). It counts the
// recommendations asked for.
func loopbackAgent(t *testing.T, rec agentapi.Recommendation, status int) (*httptest.Server, *int) {
	t.Helper()
	asked := new(int)
	capture := agentapi.Capture{
		Host: "prod", Path: "/srv/app", Root: "/srv", CapturedAt: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC),
		Processes:       []agentapi.Process{{PID: 10, Service: "api", Name: "api", Exe: "/srv/app/bin/api", CPUMillicores: 300, MemoryBytes: 200 << 20}},
		Ports:           []agentapi.Port{{Protocol: "tcp", Address: "0.0.0.0", Port: 8443, PID: 10, Service: "api"}},
		Files:           []agentapi.File{{Path: "/srv/app/bin/api", Size: 1 << 20, Mode: 0o755, Digest: "sha256:" + strings.Repeat("a", 64)}},
		Recommendations: []agentapi.Recommendation{rec},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+agentToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/capture":
			json.NewEncoder(w).Encode(capture)
		case "/v1/recommend":
			*asked++
			if status != http.StatusOK {
				w.WriteHeader(status)
				json.NewEncoder(w).Encode(agentapi.Error{Code: "internal", Message: "cannot read /proc"})
				return
			}
			json.NewEncoder(w).Encode([]agentapi.Recommendation{rec})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, asked
}

// negotiation sets up a composition of a template (db, firm at 2 cores,
// and an optional reporting service needing db) and a live source served by
// srv, under a cpu limit of limit millicores.
func negotiation(t *testing.T, srv *httptest.Server, limit int64) (*orchestrator.Orchestrator, *domain.Manifest) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(agentToken), 0o600); err != nil {
		t.Fatal(err)
	}
	hostsFile := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(hostsFile, []byte(fmt.Sprintf("hosts:\n  prod:\n    url: %s\n    token_file: token\n", srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := hosts.Load(hostsFile)
	if err != nil {
		t.Fatal(err)
	}
	firm := func(s *domain.Service) { s.Requested.CPUMillicores, s.Minimum.CPUMillicores = 2000, 2000 }
	reporting := svc("reporting", "metabase:1", optional, needs("db"), func(s *domain.Service) {
		s.Requested.CPUMillicores, s.Minimum.CPUMillicores = 1000, 1000
	})
	mem := memorySource{"base": &domain.Snapshot{Services: []domain.Service{svc("db", "postgres:16", firm), reporting}}}
	r, err := agent.New(domain.Priority)
	if err != nil {
		t.Fatal(err)
	}
	o := orchestrator.New().WithSource(domain.TemplateSource, mem).WithSource(domain.LiveSource, live.New(h)).WithResolver(r)
	m := &domain.Manifest{Name: t.Name(), ConflictResolution: domain.Priority,
		Sources: []domain.Source{
			{Type: domain.TemplateSource, ID: "base", Index: 0},
			{Type: domain.LiveSource, Host: "prod", Path: "/srv/app", Priority: 5, Index: 1},
		},
		ResourceLimits: domain.Resources{CPUMillicores: limit, MemoryBytes: 64 << 30, DiskBytes: 1e12}}
	return o, m
}

func TestNegotiationAgentConcedes(t *testing.T) {
	t.Parallel()
	// api runs on 2 cores in production but its usage says 500m will do.
	rec := agentapi.Recommendation{Service: "api", MinCPUMillicores: 500, DesiredCPUMillicores: 2000,
		MinMemoryBytes: 128 << 20, DesiredMemoryBytes: 256 << 20, Samples: 720, Basis: "720 samples every 5s"}
	srv, asked := loopbackAgent(t, rec, http.StatusOK)
	o, m := negotiation(t, srv, 3500)
	p, err := o.Plan(context.Background(), m)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	plantest.ValidatePlan(t, p)
	if *asked != 1 {
		t.Errorf("the agent was asked %d times, want once", *asked)
	}
	if len(p.Concessions) != 1 || !p.Concessions[0].Granted || p.Concessions[0].Service != "api" ||
		p.Concessions[0].From.CPUMillicores != 2000 || p.Concessions[0].To.CPUMillicores != 500 ||
		!strings.Contains(p.Concessions[0].Reason, "720 samples") {
		t.Fatalf("concessions = %+v, want api conceding 2 cores -> 500m with the agent's basis", p.Concessions)
	}
	if len(p.Dropped) != 0 {
		t.Errorf("dropped %+v although the concession made room", p.Dropped)
	}
	api, db := service(t, p, "api"), service(t, p, "db")
	if db.Allocation.CPUMillicores != 2000 {
		t.Errorf("db (firm template reservation) got %d millicores, want 2000", db.Allocation.CPUMillicores)
	}
	if got := api.Allocation.CPUMillicores + db.Allocation.CPUMillicores + service(t, p, "reporting").Allocation.CPUMillicores; got > 3500 {
		t.Errorf("cpu allocated %d > limit 3500", got)
	}
	if api.Allocation.CPUMillicores < 500 {
		t.Errorf("api got %d millicores, below its conceded minimum", api.Allocation.CPUMillicores)
	}
}

func TestNegotiationAgentDoesNotConcede(t *testing.T) {
	t.Parallel()
	firm := agentapi.Recommendation{Service: "api", MinCPUMillicores: 2000, DesiredCPUMillicores: 2000,
		MinMemoryBytes: 256 << 20, DesiredMemoryBytes: 256 << 20, Samples: 720, Basis: "busy all day"}
	t.Run("drops the optional service and fits", func(t *testing.T) {
		t.Parallel()
		srv, _ := loopbackAgent(t, firm, http.StatusOK)
		o, m := negotiation(t, srv, 4000)
		p, err := o.Plan(context.Background(), m)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		plantest.ValidatePlan(t, p)
		if len(p.Concessions) != 1 || p.Concessions[0].Granted || !strings.Contains(p.Concessions[0].Reason, "no lower") {
			t.Errorf("concessions = %+v, want api refusing", p.Concessions)
		}
		if len(p.Dropped) != 1 || p.Dropped[0].Name != "reporting" || !strings.Contains(p.Dropped[0].Reason, "Insufficient cpu") {
			t.Fatalf("dropped = %+v, want reporting, for cpu", p.Dropped)
		}
	})
	t.Run("still too big: Insufficient cpu", func(t *testing.T) {
		t.Parallel()
		srv, _ := loopbackAgent(t, firm, http.StatusOK)
		o, m := negotiation(t, srv, 3000)
		p, err := o.Plan(context.Background(), m)
		checkInsufficientCPU(t, p, err, "4 cores", "3 cores", "1 core short", "api 2 cores (live:prod:/srv/app)", "db 2 cores (template:base)")
	})
	t.Run("agent fails: refusal recorded, Insufficient cpu", func(t *testing.T) {
		t.Parallel()
		srv, asked := loopbackAgent(t, firm, http.StatusInternalServerError)
		o, m := negotiation(t, srv, 3000)
		p, err := o.Plan(context.Background(), m)
		checkInsufficientCPU(t, p, err, "4 cores")
		if *asked != 1 || len(p.Concessions) != 1 || p.Concessions[0].Granted || !strings.Contains(p.Concessions[0].Reason, "cannot read /proc") {
			t.Errorf("asked %d, concessions %+v: want one refusal saying why", *asked, p.Concessions)
		}
	})
}

func checkInsufficientCPU(t *testing.T, p *domain.Plan, err error, want ...string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EINFEASIBLE || len(de.Problems) != 1 {
		t.Fatalf("error %v: want EINFEASIBLE with one problem", err)
	}
	if p == nil || p.Feasible {
		t.Fatalf("want the infeasible plan returned with the error")
	}
	plantest.ValidatePlan(t, p)
	msg := de.Problems[0].Where + ": " + de.Problems[0].Message
	for _, w := range append([]string{"Insufficient cpu"}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not say %q", msg, w)
		}
	}
	if len(p.Dropped) != 1 || p.Dropped[0].Name != "reporting" {
		t.Errorf("dropped = %+v, want the optional reporting tried first", p.Dropped)
	}
}
