package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/store"
)

// Record writes a settled composition into the history through the store
// the service uses: the composition and its sources, the plan with every
// conflict, candidate and feature vector, its final status and its
// outcome, as the monitor would report it.
func Record(ctx context.Context, st *store.Store, run *Run) (string, error) {
	m := run.World.Manifest
	raw, err := manifestJSON(m)
	if err != nil {
		return "", err
	}
	id, err := st.CreateComposition(ctx, m, raw)
	if err != nil {
		return "", err
	}
	captured := make([]time.Time, len(run.World.Snapshots))
	for i, s := range run.World.Snapshots {
		captured[i] = s.CapturedAt
		if captured[i].IsZero() {
			captured[i] = run.World.Now
		}
	}
	rec := &domain.PlanRecord{
		Plan: run.Plan, Snapshots: run.World.Snapshots, CapturedAt: captured,
		Decisions: run.Decisions, Choices: run.Choices,
		Features: run.Features, FeatureSchema: features.SchemaHash(),
	}
	if err := st.RecordPlan(ctx, id, rec); err != nil {
		return id, err
	}
	status, verdict, why := domain.StatusSucceeded, "healthy", ""
	if !run.Healthy {
		status, verdict, why = domain.StatusFailed, "failed", "simulated: the environment failed its health checks"
	}
	if err := st.SetCompositionStatus(ctx, id, store.StatusUpdate{Status: status, Error: why}); err != nil {
		return id, err
	}
	o := store.Outcome{
		CompositionID: id, Verdict: verdict, Reporter: "simulator", ReportedAt: run.World.Now.Add(time.Hour),
		Metrics: map[string]float64{"ground_truth_success": run.Success},
	}
	for _, s := range run.Services {
		o.Services = append(o.Services, store.ServiceOutcome{Service: s.Name, Healthy: s.Healthy, ObservedAt: run.World.Now.Add(time.Hour)})
	}
	_, err = st.RecordOutcome(ctx, o)
	return id, err
}

// manifestJSON writes m as the manifest a user would have sent.
func manifestJSON(m *domain.Manifest) ([]byte, error) {
	type source struct {
		Type     string   `json:"type"`
		ID       string   `json:"id,omitempty"`
		Host     string   `json:"host,omitempty"`
		Path     string   `json:"path,omitempty"`
		Priority int      `json:"priority"`
		Tags     []string `json:"tags,omitempty"`
	}
	doc := struct {
		Name               string            `json:"name"`
		Sources            []source          `json:"sources"`
		ConflictResolution string            `json:"conflict_resolution"`
		ResourceLimits     map[string]string `json:"resource_limits"`
	}{Name: m.Name, ConflictResolution: string(m.ConflictResolution), ResourceLimits: map[string]string{
		"cpu":    fmt.Sprintf("%dm", m.ResourceLimits.CPUMillicores),
		"memory": fmt.Sprintf("%dMiB", m.ResourceLimits.MemoryBytes>>20),
		"disk":   fmt.Sprintf("%dMiB", m.ResourceLimits.DiskBytes>>20),
	}}
	for _, s := range m.Sources {
		doc.Sources = append(doc.Sources, source{Type: string(s.Type), ID: s.ID, Host: s.Host, Path: s.Path, Priority: s.Priority, Tags: s.Tags})
	}
	return json.Marshal(doc)
}
