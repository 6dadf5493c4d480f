package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/plantest"
	"github.com/snapcompose/snapcompose/internal/store"
)

func TestRecordPlanRoundTrip(t *testing.T) {
	t.Parallel()
	for _, withFeatures := range []bool{false, true} {
		name := "deterministic strategy"
		if withFeatures {
			name = "scored with features"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st, ctx := setup(t)
			webTemplate, err := st.UpsertTemplate(ctx, store.Template{ID: "web", Body: "services: {web: {}}"})
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture()
			id := newComposition(t, st, f)
			rec := record(t, f.manifest, f.snaps, withFeatures)
			if withFeatures {
				if _, err := st.InsertModelVersion(ctx, model("m1", []byte("onnx-1"))); err != nil {
					t.Fatal(err)
				}
				rec.ModelVersion = "m1"
			}
			kinds := map[domain.ClaimKind]bool{}
			for _, cf := range rec.Plan.Conflicts {
				kinds[cf.Kind] = true
			}
			if len(kinds) < 6 || len(rec.Plan.Dropped) == 0 {
				t.Fatalf("the fixture should have conflicts of every kind and drops; got kinds %v, %d drops", kinds, len(rec.Plan.Dropped))
			}
			if err := st.RecordPlan(ctx, id, rec); err != nil {
				t.Fatal(err)
			}

			// The plan, byte for byte once encoded, and still a valid plan.
			c, err := st.GetComposition(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Plan == nil {
				t.Fatal("no plan recorded")
			}
			got, want := mustJSON(t, c.Plan), mustJSON(t, rec.Plan)
			if got != want {
				t.Errorf("plan round trip:\ngot  %s\nwant %s", got, want)
			}
			plantest.Validate(t, []byte(got))
			if c.Feasible == nil || *c.Feasible != rec.Plan.Feasible || c.ModelVersion != rec.ModelVersion || c.Status != domain.StatusPending {
				t.Errorf("got feasible %v model %q status %s", c.Feasible, c.ModelVersion, c.Status)
			}

			checkSnapshots(t, st, id, rec, webTemplate)
			checkClaims(t, st, id, rec)
			checkConflicts(t, st, id, rec)
			checkAllocations(t, st, id, rec)
			checkDropped(t, st, id, rec)

			// A plan is recorded once.
			wantError(t, st.RecordPlan(ctx, id, rec), domain.ECONFLICT, "already recorded")
		})
	}
}

func checkSnapshots(t *testing.T, st *store.Store, id string, rec *domain.PlanRecord, web store.Template) {
	t.Helper()
	rows, err := st.Pool().Query(t.Context(), `
		SELECT s.position, s.digest, s.body, coalesce(v.template_id || '@' || v.version, ''), coalesce(s.host, ''), coalesce(s.path, ''), s.captured_at, s.recorded_at
		FROM snapshots s LEFT JOIN template_versions v ON v.id = s.template_version_id
		WHERE s.composition_id = $1 ORDER BY s.position`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var pos int
		var digest, version, host, path string
		var body []byte
		var captured, recorded time.Time
		if err := rows.Scan(&pos, &digest, &body, &version, &host, &path, &captured, &recorded); err != nil {
			t.Fatal(err)
		}
		n++
		snap := rec.Snapshots[pos]
		if !strings.HasPrefix(digest, "sha256:") {
			t.Errorf("snapshot %d: digest %q", pos, digest)
		}
		// db is not a stored template; a live capture has no template.
		wantVersion := map[int]string{0: fmt.Sprintf("web@%d", web.Version)}[pos]
		if version != wantVersion {
			t.Errorf("snapshot %d: template version %q, want %q", pos, version, wantVersion)
		}
		if host != snap.Source.Host || path != snap.Source.Path {
			t.Errorf("snapshot %d: host %q path %q, want %q %q", pos, host, path, snap.Source.Host, snap.Source.Path)
		}
		if at := rec.CapturedAt[pos]; !at.IsZero() && !captured.Equal(at) || at.IsZero() && captured.Sub(recorded).Abs() > time.Minute {
			t.Errorf("snapshot %d: captured at %v, want %v", pos, captured, at)
		}
		var doc struct {
			Source struct {
				Ref string `json:"ref"`
			} `json:"source"`
			Services []struct {
				Name      string           `json:"name"`
				Image     string           `json:"image"`
				Requested domain.Resources `json:"requested"`
			} `json:"services"`
			Env []struct {
				Name   string  `json:"name"`
				Value  *string `json:"value"`
				Digest string  `json:"digest"`
			} `json:"env"`
			Files []struct {
				Path string `json:"path"`
			} `json:"files"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Source.Ref != string(snap.Source.Ref()) || len(doc.Services) != len(snap.Services) || len(doc.Env) != len(snap.Env) || len(doc.Files) != len(snap.Files) {
			t.Errorf("snapshot %d: body %s does not match %+v", pos, body, snap)
		}
		for i, s := range doc.Services {
			if s.Name != snap.Services[i].Name || s.Image != snap.Services[i].Image || s.Requested != snap.Services[i].Requested {
				t.Errorf("snapshot %d service %d: got %+v", pos, i, s)
			}
		}
		for i, e := range doc.Env {
			want := snap.Env[i]
			if want.Secret() {
				if e.Value != nil || e.Digest != domain.Digest([]byte(want.Value)) {
					t.Errorf("snapshot %d: secret %s stored as %+v, want its digest only", pos, want.Name, e)
				}
			} else if e.Value == nil || *e.Value != want.Value {
				t.Errorf("snapshot %d: variable %s stored as %+v", pos, want.Name, e)
			}
		}
		if strings.Contains(string(body), "hunter2") {
			t.Errorf("snapshot %d holds a secret value: %s", pos, body)
		}
	}
	if n != len(rec.Snapshots) {
		t.Errorf("got %d snapshots, want %d", n, len(rec.Snapshots))
	}
}

func checkClaims(t *testing.T, st *store.Store, id string, rec *domain.PlanRecord) {
	t.Helper()
	rows, err := st.Pool().Query(t.Context(), `SELECT kind, key, source_ref, owner, content_digest FROM claims WHERE composition_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []domain.Claim
	for rows.Next() {
		var c domain.Claim
		if err := rows.Scan(&c.Kind, &c.Key, &c.Source, &c.Owner, &c.Content); err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	less := func(a, b domain.Claim) int { return strings.Compare(mustJSON(t, a), mustJSON(t, b)) }
	want := slices.Clone(rec.Claims)
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	if !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("claims:\ngot  %v\nwant %v", got, want)
	}
}

func checkConflicts(t *testing.T, st *store.Store, id string, rec *domain.PlanRecord) {
	t.Helper()
	got, err := st.Conflicts(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rec.Plan.Conflicts) {
		t.Fatalf("got %d conflicts, want %d", len(got), len(rec.Plan.Conflicts))
	}
	for i, g := range got {
		want := rec.Plan.Conflicts[i]
		wantRes := *want.Resolution
		wantRes.Alternatives = nil // not kept: the candidates are
		want.Resolution = &wantRes
		if g.Ordinal != i || mustJSON(t, g.Conflict) != mustJSON(t, want) {
			t.Errorf("conflict %d:\ngot  %s\nwant %s", i, mustJSON(t, g.Conflict), mustJSON(t, want))
		}
		d, ch := rec.Decisions[i], rec.Choices[i]
		if len(g.Candidates) != len(d.Candidates) {
			t.Fatalf("conflict %d: got %d candidates, want %d", i, len(g.Candidates), len(d.Candidates))
		}
		chosen := 0
		for j, c := range g.Candidates {
			wc := d.Candidates[j]
			if c.Ordinal != j || c.Action != wc.Resolution.Action || mustJSON(t, c.Winner) != mustJSON(t, wc.Resolution.Winner) ||
				c.Detail != wc.Resolution.Detail || c.Rejected != wc.Rejected || c.Chosen != (j == ch.Candidate) {
				t.Errorf("conflict %d candidate %d: got %+v, want %+v chosen %v", i, j, c, wc, j == ch.Candidate)
			}
			if c.Chosen {
				chosen++
			}
			var wantScore *float64 // a rejected candidate was not scored
			if ch.Scores != nil && wc.Rejected == "" {
				wantScore = &ch.Scores[j]
			}
			if mustJSON(t, c.Score) != mustJSON(t, wantScore) {
				t.Errorf("conflict %d candidate %d: score %v, want %v", i, j, c.Score, wantScore)
			}
			var wantFeatures []float32
			wantSchema := ""
			if rec.Features != nil {
				wantFeatures, wantSchema = rec.Features[i][j], rec.FeatureSchema
			}
			if !slices.Equal(c.Features, wantFeatures) || c.FeatureSchema != wantSchema {
				t.Errorf("conflict %d candidate %d: features %v (%q), want %v (%q)", i, j, c.Features, c.FeatureSchema, wantFeatures, wantSchema)
			}
		}
		if chosen != 1 {
			t.Errorf("conflict %d: %d candidates chosen", i, chosen)
		}
	}
}

func checkAllocations(t *testing.T, st *store.Store, id string, rec *domain.PlanRecord) {
	t.Helper()
	got, err := st.Allocations(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Allocation
	for _, s := range rec.Plan.Services {
		want = append(want, store.Allocation{Service: s.Name, Source: s.Source, Allocated: s.Allocation, Requested: s.Requested, Minimum: s.Minimum, Optional: s.Optional})
	}
	if !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("allocations:\ngot  %+v\nwant %+v", got, want)
	}
}

func checkDropped(t *testing.T, st *store.Store, id string, rec *domain.PlanRecord) {
	t.Helper()
	rows, err := st.Pool().Query(t.Context(), `SELECT service, source_ref, reason FROM dropped_services WHERE composition_id = $1 ORDER BY ordinal`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []domain.Dropped
	for rows.Next() {
		var d domain.Dropped
		if err := rows.Scan(&d.Name, &d.Source, &d.Reason); err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	if !slices.Equal(got, rec.Plan.Dropped) {
		t.Errorf("dropped:\ngot  %+v\nwant %+v", got, rec.Plan.Dropped)
	}
}

func TestRecordPlanRejects(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	tests := []struct {
		name  string
		id    func(f fixture) string
		edit  func(r *domain.PlanRecord)
		code  string
		words []string
	}{
		{name: "a choice missing", edit: func(r *domain.PlanRecord) { r.Choices = r.Choices[1:] }, code: domain.EINVALID, words: []string{"choices"}},
		{name: "decisions out of order", edit: func(r *domain.PlanRecord) { r.Decisions[0], r.Decisions[1] = r.Decisions[1], r.Decisions[0] }, code: domain.EINVALID, words: []string{"decision 0"}},
		{name: "a choice out of range", edit: func(r *domain.PlanRecord) { r.Choices[0].Candidate = 99 }, code: domain.EINVALID, words: []string{"candidate 99"}},
		{name: "features without a schema", edit: func(r *domain.PlanRecord) { r.FeatureSchema = "" }, code: domain.EINVALID, words: []string{"feature schema"}},
		{name: "a snapshot of another source", edit: func(r *domain.PlanRecord) { r.Snapshots[0], r.Snapshots[1] = r.Snapshots[1], r.Snapshots[0] }, code: domain.EINVALID, words: []string{"template:web"}},
		{name: "a snapshot missing", edit: func(r *domain.PlanRecord) { r.Snapshots = r.Snapshots[:2]; r.CapturedAt = nil }, code: domain.EINVALID, words: []string{"2 snapshots"}},
		{name: "an unknown model", edit: func(r *domain.PlanRecord) { r.ModelVersion = "nope" }, code: domain.ENOTFOUND, words: []string{"nope"}},
		{name: "an unknown composition", id: func(fixture) string { return randomUUID() }, edit: func(*domain.PlanRecord) {}, code: domain.ENOTFOUND},
		// These fail in the middle of the transaction, after rows were copied.
		{name: "a drop without a reason", edit: func(r *domain.PlanRecord) { r.Plan.Dropped[0].Reason = " " }, code: domain.EINVALID, words: []string{"dropped_services_reason_check"}},
		{name: "a negative allocation", edit: func(r *domain.PlanRecord) { r.Plan.Services[0].Allocation.CPUMillicores = -1 }, code: domain.EINVALID, words: []string{"allocations_cpu_millicores_check"}},
		{name: "a service of a source not in the manifest", edit: func(r *domain.PlanRecord) { r.Plan.Services[0].Source = "template:ghost" }, code: domain.ENOTFOUND, words: []string{"allocations_source_fkey"}},
		{name: "a non-finite score", edit: func(r *domain.PlanRecord) {
			// on a scored candidate that was not chosen (the chosen one's
			// score is in the plan too)
			for j, c := range r.Decisions[0].Candidates {
				if j != r.Choices[0].Candidate && c.Rejected == "" {
					r.Choices[0].Scores[j] = 1 / zero()
					return
				}
			}
		}, code: domain.EINVALID, words: []string{"candidates_score_check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			id := newComposition(t, st, f)
			target := id
			if tt.id != nil {
				target = tt.id(f)
			}
			rec := record(t, f.manifest, f.snaps, true)
			tt.edit(rec)
			wantError(t, st.RecordPlan(ctx, target, rec), tt.code, tt.words...)
			// Nothing of a refused record is kept.
			var rows int
			err := st.Pool().QueryRow(ctx, `
				SELECT (SELECT count(*) FROM snapshots WHERE composition_id = $1) + (SELECT count(*) FROM claims WHERE composition_id = $1)
					+ (SELECT count(*) FROM conflicts WHERE composition_id = $1) + (SELECT count(*) FROM allocations WHERE composition_id = $1)
					+ (SELECT count(*) FROM dropped_services WHERE composition_id = $1)
					+ (SELECT count(*) FROM compositions WHERE id = $1 AND (plan IS NOT NULL OR feasible IS NOT NULL))`, id).Scan(&rows)
			if err != nil || rows != 0 {
				t.Errorf("a refused record left %d rows (%v)", rows, err)
			}
		})
	}
}

func zero() float64 { return 0 }
