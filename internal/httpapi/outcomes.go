package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// OutcomeReport is a report on how a composed environment is doing: an
// overall verdict and, per service, its health and performance. Each
// decision of the composition is labelled from it for retraining.
type OutcomeReport struct {
	ID         int64              `json:"id,omitempty"`
	Verdict    string             `json:"verdict"`
	Reporter   string             `json:"reporter,omitempty"`
	ReportedAt *time.Time         `json:"reported_at,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	Services   []ServiceReport    `json:"services,omitempty"`
}

// ServiceReport is one service's health in an OutcomeReport.
type ServiceReport struct {
	Service    string             `json:"service"`
	Healthy    *bool              `json:"healthy"`
	LatencyMS  *float64           `json:"latency_ms,omitempty"`
	ErrorRate  *float64           `json:"error_rate,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	ObservedAt *time.Time         `json:"observed_at,omitempty"`
}

// UsageReport is a service's measured usage while the composition runs.
type UsageReport struct {
	Service string `json:"service"`
	// Host is where it runs; "" means the composition's own name for it.
	Host            string        `json:"host,omitempty"`
	IntervalSeconds int           `json:"interval_seconds"`
	Samples         []UsageSample `json:"samples"`
}

// UsageSample is one interval of a UsageReport.
type UsageSample struct {
	At            time.Time `json:"at"`
	CPUMillicores int64     `json:"cpu_millicores"`
	MemoryBytes   int64     `json:"memory_bytes"`
}

// UsageResult says what a UsageReport did: the samples stored and, when
// they show the service outgrowing its allocation, the outcome recorded
// for it.
type UsageResult struct {
	SeriesID  int64    `json:"series_id"`
	Inserted  int64    `json:"inserted"`
	Skipped   int64    `json:"skipped"`
	Overruns  []string `json:"overruns"` // "cpu", "memory": what went past the allocation
	OutcomeID int64    `json:"outcome_id,omitempty"`
}

// Monitoring takes what happens to a composed environment back into the
// history.
type Monitoring interface {
	ReportOutcome(ctx context.Context, id string, o OutcomeReport) (OutcomeReport, error)
	Outcomes(ctx context.Context, id string) ([]OutcomeReport, error)
	ReportUsage(ctx context.Context, id string, u UsageReport) (UsageResult, error)
}

// checkOutcome names every problem of a report.
func checkOutcome(o OutcomeReport) error {
	var problems []domain.Problem
	switch o.Verdict {
	case "healthy", "degraded", "failed":
	default:
		problems = append(problems, domain.Problem{Where: "/verdict", Message: fmt.Sprintf("%q: want healthy, degraded or failed", o.Verdict)})
	}
	finite := func(where string, m map[string]float64) {
		for k, v := range m {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				problems = append(problems, domain.Problem{Where: where + "/" + k, Message: "must be a finite number"})
			}
		}
	}
	finite("/metrics", o.Metrics)
	seen := map[string]bool{}
	for i, s := range o.Services {
		at := fmt.Sprintf("/services/%d", i)
		switch {
		case s.Service == "":
			problems = append(problems, domain.Problem{Where: at + "/service", Message: "is required: the service's name in the plan"})
		case seen[s.Service]:
			problems = append(problems, domain.Problem{Where: at + "/service", Message: fmt.Sprintf("%q is reported twice", s.Service)})
		}
		seen[s.Service] = true
		if s.Healthy == nil {
			problems = append(problems, domain.Problem{Where: at + "/healthy", Message: "is required: true or false"})
		}
		if s.LatencyMS != nil && !(*s.LatencyMS >= 0 && !math.IsInf(*s.LatencyMS, 0)) {
			problems = append(problems, domain.Problem{Where: at + "/latency_ms", Message: "must be a finite number of milliseconds, 0 or more"})
		}
		if s.ErrorRate != nil && !(*s.ErrorRate >= 0 && *s.ErrorRate <= 1) {
			problems = append(problems, domain.Problem{Where: at + "/error_rate", Message: "must be a share from 0 to 1"})
		}
		finite(at+"/metrics", s.Metrics)
	}
	if len(problems) > 0 {
		return domain.Invalid("invalid outcome report", problems)
	}
	return nil
}

func (s *Server) reportOutcome(w http.ResponseWriter, r *http.Request) {
	var o OutcomeReport
	if err := decodeBody(r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkOutcome(o); err != nil {
		s.writeError(w, r, err)
		return
	}
	if o.Reporter == "" {
		o.Reporter = "token:" + caller(r)
	}
	out, err := s.Monitoring.ReportOutcome(r.Context(), chi.URLParam(r, "id"), o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listOutcomes(w http.ResponseWriter, r *http.Request) {
	os, err := s.Monitoring.Outcomes(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"outcomes": os})
}

func (s *Server) reportUsage(w http.ResponseWriter, r *http.Request) {
	var u UsageReport
	if err := decodeBody(r, &u); err != nil {
		s.writeError(w, r, err)
		return
	}
	var problems []domain.Problem
	if u.Service == "" {
		problems = append(problems, domain.Problem{Where: "/service", Message: "is required: the service's name in the plan"})
	}
	if u.IntervalSeconds <= 0 {
		problems = append(problems, domain.Problem{Where: "/interval_seconds", Message: "must be a positive number of seconds"})
	}
	if len(u.Samples) == 0 {
		problems = append(problems, domain.Problem{Where: "/samples", Message: "must hold at least one sample"})
	}
	for i, smp := range u.Samples {
		if smp.At.IsZero() {
			problems = append(problems, domain.Problem{Where: fmt.Sprintf("/samples/%d/at", i), Message: "is required (RFC 3339)"})
		}
		if smp.CPUMillicores < 0 || smp.MemoryBytes < 0 {
			problems = append(problems, domain.Problem{Where: fmt.Sprintf("/samples/%d", i), Message: "cpu_millicores and memory_bytes must be 0 or more"})
		}
	}
	if len(problems) > 0 {
		s.writeError(w, r, domain.Invalid("invalid usage report", problems))
		return
	}
	res, err := s.Monitoring.ReportUsage(r.Context(), chi.URLParam(r, "id"), u)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
