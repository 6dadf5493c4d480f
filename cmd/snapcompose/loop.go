package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/store"
	usagetrace "github.com/snapcompose/snapcompose/internal/usage"
	"github.com/snapcompose/snapcompose/training/registry"
)

// The loop back from a composed environment to a better model: outcomes
// and usage reported over the API, and the model registry.

var _ httpapi.Monitoring = serverCompositions{}

// reportable returns composition id when its environment exists to be
// reported on.
func (s serverCompositions) reportable(ctx context.Context, id string) (*store.Composition, error) {
	c, err := s.st.GetComposition(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Status != domain.StatusSucceeded || c.Plan == nil {
		return nil, domain.Errorf(domain.ECONFLICT, "composition %s is %s: only a succeeded composition has an environment to report on", id, c.Status)
	}
	return c, nil
}

func (s serverCompositions) ReportOutcome(ctx context.Context, id string, r httpapi.OutcomeReport) (httpapi.OutcomeReport, error) {
	c, err := s.reportable(ctx, id)
	if err != nil {
		return r, err
	}
	for i, sr := range r.Services {
		if !slices.ContainsFunc(c.Plan.Services, func(p domain.PlanService) bool { return p.Name == sr.Service }) {
			return r, domain.Errorf(domain.EINVALID, "/services/%d/service: %q is not a service of composition %s (it has %s)", i, sr.Service, id, serviceNames(c.Plan))
		}
	}
	// Times left out are now, here, so that the answer says what is stored.
	now := time.Now().UTC()
	if r.ReportedAt == nil {
		r.ReportedAt = &now
	}
	o := store.Outcome{CompositionID: id, Verdict: r.Verdict, Reporter: r.Reporter, Metrics: r.Metrics, ReportedAt: *r.ReportedAt}
	for i := range r.Services {
		sr := &r.Services[i]
		if sr.ObservedAt == nil {
			sr.ObservedAt = &now
		}
		o.Services = append(o.Services, store.ServiceOutcome{Service: sr.Service, Healthy: *sr.Healthy, LatencyMS: sr.LatencyMS,
			ErrorRate: sr.ErrorRate, Metrics: sr.Metrics, ObservedAt: *sr.ObservedAt})
	}
	r.ID, err = s.st.RecordOutcome(ctx, o)
	return r, err
}

func serviceNames(p *domain.Plan) string {
	names := make([]string, len(p.Services))
	for i, s := range p.Services {
		names[i] = s.Name
	}
	return fmt.Sprint(names)
}

func (s serverCompositions) Outcomes(ctx context.Context, id string) ([]httpapi.OutcomeReport, error) {
	if _, err := s.st.GetComposition(ctx, id); err != nil {
		return nil, err
	}
	os, err := s.st.Outcomes(ctx, id)
	if err != nil {
		return nil, err
	}
	out := []httpapi.OutcomeReport{}
	for _, o := range os {
		r := httpapi.OutcomeReport{ID: o.ID, Verdict: o.Verdict, Reporter: o.Reporter, ReportedAt: &o.ReportedAt, Metrics: o.Metrics}
		for _, so := range o.Services {
			healthy, at := so.Healthy, so.ObservedAt
			r.Services = append(r.Services, httpapi.ServiceReport{Service: so.Service, Healthy: &healthy, LatencyMS: so.LatencyMS,
				ErrorRate: so.ErrorRate, Metrics: so.Metrics, ObservedAt: &at})
		}
		out = append(out, r)
	}
	return out, nil
}

// ReportUsage stores a service's measured usage with its composition, and
// when the samples show it outgrowing its allocation — memory above it at
// any sample (the service would be killed), or cpu above it at the 95th
// percentile (throttled) — records an outcome saying so: verdict degraded,
// the service unhealthy, by the monitor. That outcome labels the
// decisions that touched the service for retraining; a later report (a
// person's verdict) supersedes it.
func (s serverCompositions) ReportUsage(ctx context.Context, id string, u httpapi.UsageReport) (httpapi.UsageResult, error) {
	c, err := s.reportable(ctx, id)
	if err != nil {
		return httpapi.UsageResult{}, err
	}
	i := slices.IndexFunc(c.Plan.Services, func(p domain.PlanService) bool { return p.Name == u.Service })
	if i < 0 {
		return httpapi.UsageResult{}, domain.Errorf(domain.EINVALID, "/service: %q is not a service of composition %s (it has %s)", u.Service, id, serviceNames(c.Plan))
	}
	alloc := c.Plan.Services[i].Allocation
	host := u.Host
	if host == "" {
		host = "composition:" + id
	}
	series := usagetrace.Series{Origin: usagetrace.OriginReport, Host: host, Service: u.Service, CompositionID: id, IntervalSeconds: u.IntervalSeconds}
	samples := func(yield func(usagetrace.Sample) bool) {
		for _, smp := range u.Samples {
			if !yield(usagetrace.Sample{Time: smp.At, CPUMillicores: smp.CPUMillicores, MemoryBytes: smp.MemoryBytes,
				CPUCapacityMillicores: alloc.CPUMillicores, MemoryCapacityBytes: alloc.MemoryBytes}) {
				return
			}
		}
	}
	res, err := s.st.ImportUsage(ctx, series, samples, store.UsageImportOptions{})
	if err != nil {
		return httpapi.UsageResult{}, err
	}
	out := httpapi.UsageResult{SeriesID: res.SeriesID, Inserted: res.Inserted, Skipped: res.Skipped, Overruns: []string{}}
	cpu := make([]int64, len(u.Samples))
	var memMax int64
	for j, smp := range u.Samples {
		cpu[j] = smp.CPUMillicores
		memMax = max(memMax, smp.MemoryBytes)
	}
	slices.Sort(cpu)
	cpuP95 := cpu[min(len(cpu)-1, len(cpu)*95/100)]
	if alloc.CPUMillicores > 0 && cpuP95 > alloc.CPUMillicores {
		out.Overruns = append(out.Overruns, "cpu")
	}
	if alloc.MemoryBytes > 0 && memMax > alloc.MemoryBytes {
		out.Overruns = append(out.Overruns, "memory")
	}
	if len(out.Overruns) == 0 || res.Inserted == 0 {
		return out, nil
	}
	out.OutcomeID, err = s.st.RecordOutcome(ctx, store.Outcome{
		CompositionID: id, Verdict: store.VerdictDegraded, Reporter: "monitor:usage",
		Metrics: map[string]float64{"overrun_services": 1},
		Services: []store.ServiceOutcome{{Service: u.Service, Healthy: false, Metrics: map[string]float64{
			"cpu_p95_millicores": float64(cpuP95), "cpu_allocated_millicores": float64(alloc.CPUMillicores),
			"memory_max_bytes": float64(memMax), "memory_allocated_bytes": float64(alloc.MemoryBytes),
		}}},
	})
	return out, err
}

// serverModels is the model registry over the API. Training runs in the
// background of this process, one at a time; promotions take effect here
// at once and in other processes within their --model-poll.
type serverModels struct {
	st    *store.Store
	agent *servingAgent
	base  context.Context // the server's: a training run ends with it

	mu       sync.Mutex
	training *int64 // the run in progress here, if any
	wg       sync.WaitGroup
}

var _ httpapi.Models = (*serverModels)(nil)

func modelView(m store.ModelVersion) httpapi.ModelVersion {
	return httpapi.ModelVersion{Version: m.Version, CreatedAt: m.CreatedAt, Promoted: m.Promoted, PromotedAt: m.PromotedAt,
		FeatureSchema: m.FeatureSchema, ONNXDigest: m.ONNXDigest, Metrics: m.Metrics, Card: m.Card}
}

func (s *serverModels) List(ctx context.Context) ([]httpapi.ModelVersion, error) {
	vs, err := s.st.ListModelVersions(ctx)
	if err != nil {
		return nil, err
	}
	out := []httpapi.ModelVersion{}
	for _, v := range vs {
		mv := modelView(v)
		mv.Card = nil // the list is a summary; GET /v1/models/{version} has the card
		out = append(out, mv)
	}
	return out, nil
}

func (s *serverModels) Get(ctx context.Context, version string) (httpapi.ModelVersion, error) {
	v, err := s.st.ModelVersion(ctx, version)
	return modelView(v), err
}

func (s *serverModels) Promote(ctx context.Context, version, by string) error {
	v, err := s.Get(ctx, version)
	if err != nil {
		return err
	}
	if v.FeatureSchema != features.SchemaHash() {
		return domain.Errorf(domain.EINVALID, "model %s extracts feature schema %s; this build extracts %s, so it cannot serve", version, v.FeatureSchema, features.SchemaHash())
	}
	if err := s.st.PromoteModelBy(ctx, version, "token:"+by, "promoted over the API"); err != nil {
		return err
	}
	s.agent.sync(ctx)
	return nil
}

func (s *serverModels) Rollback(ctx context.Context, by string) (string, error) {
	version, err := s.st.RollbackModel(ctx, "token:"+by)
	if err != nil {
		return "", err
	}
	s.agent.sync(ctx)
	return version, nil
}

func (s *serverModels) Promotions(ctx context.Context) ([]httpapi.Promotion, error) {
	ps, err := s.st.Promotions(ctx)
	if err != nil {
		return nil, err
	}
	out := []httpapi.Promotion{}
	for _, p := range ps {
		out = append(out, httpapi.Promotion{Version: p.Version, PromotedAt: p.PromotedAt, By: p.By, Reason: p.Reason})
	}
	return out, nil
}

func (s *serverModels) StartTraining(ctx context.Context, req httpapi.TrainingRequest, by string) (httpapi.TrainingRun, error) {
	s.mu.Lock()
	if s.training != nil {
		id := *s.training
		s.mu.Unlock()
		return httpapi.TrainingRun{}, domain.Errorf(domain.ECONFLICT, "training run %d is running in this server; follow it at /v1/training-runs/%d", id, id)
	}
	var zero int64
	s.training = &zero
	s.mu.Unlock()
	opt := registry.Options{Seed: 1, Promote: req.Promote, RealWeight: req.RealWeight, By: "token:" + by}
	if req.From != nil {
		opt.From = *req.From
	}
	if req.To != nil {
		opt.To = *req.To
	}
	started := make(chan store.TrainingRun, 1)
	failed := make(chan error, 1)
	opt.OnRun = func(r store.TrainingRun) {
		s.mu.Lock()
		s.training = &r.ID
		s.mu.Unlock()
		started <- r
	}
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			s.training = nil
			s.mu.Unlock()
		}()
		o, err := registry.Train(s.base, s.st, opt)
		if err != nil {
			failed <- err
			return
		}
		if o.Promoted {
			s.agent.sync(s.base)
		}
	})
	select {
	case r := <-started:
		return s.TrainingRun(ctx, r.ID)
	case err := <-failed:
		return httpapi.TrainingRun{}, err // before a run was recorded: bad options
	case <-ctx.Done():
		return httpapi.TrainingRun{}, ctx.Err()
	}
}

func (s *serverModels) TrainingRun(ctx context.Context, id int64) (httpapi.TrainingRun, error) {
	r, err := s.st.TrainingRun(ctx, id)
	if err != nil {
		return httpapi.TrainingRun{}, err
	}
	out := httpapi.TrainingRun{ID: r.ID, Status: r.Status, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		DataFrom: r.DataFrom, DataTo: r.DataTo, Rows: r.Rows, Progress: r.Progress, Metrics: r.Metrics, Error: r.Error}
	if r.ModelVersionID != nil {
		var version string
		if err := s.st.Pool().QueryRow(ctx, `SELECT version FROM model_versions WHERE id = $1`, *r.ModelVersionID).Scan(&version); err == nil {
			out.ModelVersion = version
		}
	}
	return out, nil
}

// wait waits for a training run in progress to end (the server's context
// ends it).
func (s *serverModels) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}
