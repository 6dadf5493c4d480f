package store_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

func TestCreateAndGetComposition(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	f := newFixture()
	before := time.Now()
	id := newComposition(t, st, f)
	c, err := st.GetComposition(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || c.Name != "shop" || c.Strategy != domain.Priority || c.Status != domain.StatusPending ||
		c.Limits != f.manifest.ResourceLimits || c.Plan != nil || c.Error != "" || c.Feasible != nil ||
		c.FinishedAt != nil || c.ModelVersion != "" || len(c.Timings) != 0 {
		t.Errorf("got %+v, want a pending composition of the fixture", c)
	}
	if c.CreatedAt.Before(before.Add(-time.Minute)) || c.UpdatedAt.Before(c.CreatedAt) {
		t.Errorf("got created_at %v updated_at %v", c.CreatedAt, c.UpdatedAt)
	}
	var gotManifest, wantManifest any
	if err := json.Unmarshal(c.Manifest, &gotManifest); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(f.raw, &wantManifest)
	if mustJSON(t, gotManifest) != mustJSON(t, wantManifest) {
		t.Errorf("got manifest %s, want %s", c.Manifest, f.raw)
	}

	// The sources are recorded with it.
	rows, err := st.Pool().Query(ctx, `SELECT position, ref, type, priority, tags FROM composition_sources WHERE composition_id = $1 ORDER BY position`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		var pos, priority int
		var ref, typ string
		var tags []string
		if err := rows.Scan(&pos, &ref, &typ, &priority, &tags); err != nil {
			t.Fatal(err)
		}
		src := f.manifest.Sources[pos]
		if ref != string(src.Ref()) || typ != string(src.Type) || priority != src.Priority || len(tags) != len(src.Tags) {
			t.Errorf("source %d: got %s %s %d %v, want %+v", pos, ref, typ, priority, tags, src)
		}
		n++
	}
	if n != 3 {
		t.Errorf("got %d sources, want 3", n)
	}
}

func TestCreateCompositionRejectsBadInput(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	tests := []struct {
		name  string
		edit  func(m *domain.Manifest, raw *[]byte)
		code  string
		words []string
	}{
		{name: "raw manifest is not JSON", edit: func(_ *domain.Manifest, raw *[]byte) { *raw = []byte("{") }, code: domain.EINVALID, words: []string{"not valid JSON"}},
		{name: "raw manifest is not an object", edit: func(_ *domain.Manifest, raw *[]byte) { *raw = []byte("[1]") }, code: domain.EINVALID, words: []string{"compositions_manifest_check"}},
		{name: "unknown strategy", edit: func(m *domain.Manifest, _ *[]byte) { m.ConflictResolution = "RANDOM" }, code: domain.EINVALID, words: []string{"compositions_strategy_check"}},
		{name: "empty name", edit: func(m *domain.Manifest, _ *[]byte) { m.Name = "" }, code: domain.EINVALID, words: []string{"compositions_name_check"}},
		{name: "negative limit", edit: func(m *domain.Manifest, _ *[]byte) { m.ResourceLimits.MemoryBytes = -1 }, code: domain.EINVALID, words: []string{"compositions_limit_memory_check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			tt.edit(f.manifest, &f.raw)
			_, err := st.CreateComposition(ctx, f.manifest, f.raw)
			wantError(t, err, tt.code, tt.words...)
		})
	}
}

func TestSetCompositionStatus(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	id := newComposition(t, st, newFixture())
	steps := []store.StatusUpdate{
		{Status: domain.StatusRunning, Timings: map[string]int64{"retrieve": 12}},
		{Status: domain.StatusPlanned, Timings: map[string]int64{"analyse": 3, "resolve": 40}, Feasible: ptr(true)},
		{Status: domain.StatusProvisioning},
		{Status: domain.StatusProvisioned, Timings: map[string]int64{"provision": 7}},
		{Status: domain.StatusInstantiated},
		{Status: domain.StatusFailed, Error: "instantiate: disk full"},
	}
	for _, u := range steps {
		if err := st.SetCompositionStatus(ctx, id, u); err != nil {
			t.Fatalf("to %s: %v", u.Status, err)
		}
		c, err := st.GetComposition(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != u.Status || (c.FinishedAt != nil) != u.Status.Final() {
			t.Errorf("got status %s finished_at %v, want %s", c.Status, c.FinishedAt, u.Status)
		}
	}
	c, _ := st.GetComposition(ctx, id)
	wantTimings := map[string]int64{"retrieve": 12, "analyse": 3, "resolve": 40, "provision": 7}
	if !maps.Equal(c.Timings, wantTimings) || c.Feasible == nil || !*c.Feasible || c.Error != "instantiate: disk full" {
		t.Errorf("got timings %v feasible %v error %q", c.Timings, c.Feasible, c.Error)
	}

	// A finished composition stays finished.
	err := st.SetCompositionStatus(ctx, id, store.StatusUpdate{Status: domain.StatusRunning})
	wantError(t, err, domain.ECONFLICT, "failed")
}

func TestSetCompositionStatusErrors(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	id := newComposition(t, st, newFixture())
	tests := []struct {
		name  string
		id    string
		u     store.StatusUpdate
		code  string
		words []string
	}{
		{name: "unknown status", id: id, u: store.StatusUpdate{Status: "exploded"}, code: domain.EINVALID, words: []string{"compositions_status_check"}},
		{name: "failed without an error", id: id, u: store.StatusUpdate{Status: domain.StatusFailed}, code: domain.EINVALID, words: []string{"compositions_error_check"}},
		{name: "unknown composition", id: randomUUID(), u: store.StatusUpdate{Status: domain.StatusRunning}, code: domain.ENOTFOUND},
		{name: "malformed id", id: "42", u: store.StatusUpdate{Status: domain.StatusRunning}, code: domain.EINVALID, words: []string{"not a UUID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, st.SetCompositionStatus(ctx, tt.id, tt.u), tt.code, tt.words...)
		})
	}
	if _, err := st.GetComposition(ctx, randomUUID()); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("GetComposition of an unknown id: got %v, want ENOTFOUND", err)
	}
}

func TestListCompositions(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	// 25 compositions over 5 days, strategies and statuses in turn.
	strategies := []domain.Strategy{domain.Priority, domain.FirstWin, domain.AIAgent}
	day0 := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	type made struct {
		id       string
		at       time.Time
		strategy domain.Strategy
		failed   bool
	}
	var all []made
	for i := range 25 {
		f := newFixture()
		f.manifest.ConflictResolution = strategies[i%3]
		id := newComposition(t, st, f)
		at := day0.Add(time.Duration(i) * 5 * time.Hour)
		if i == 7 || i == 8 {
			at = day0.Add(35 * time.Hour) // equal times: the id breaks the tie
		}
		if _, err := st.Pool().Exec(ctx, `UPDATE compositions SET created_at = $2, updated_at = $2 WHERE id = $1`, id, at); err != nil {
			t.Fatal(err)
		}
		failed := i%4 == 0
		if failed {
			if err := st.SetCompositionStatus(ctx, id, store.StatusUpdate{Status: domain.StatusFailed, Error: "boom"}); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, made{id, at, strategies[i%3], failed})
	}
	tests := []struct {
		name   string
		filter store.CompositionFilter
		keep   func(m made) bool
	}{
		{name: "all", keep: func(made) bool { return true }},
		{name: "by strategy", filter: store.CompositionFilter{Strategy: domain.FirstWin}, keep: func(m made) bool { return m.strategy == domain.FirstWin }},
		{name: "by status", filter: store.CompositionFilter{Status: domain.StatusFailed}, keep: func(m made) bool { return m.failed }},
		{name: "by time", filter: store.CompositionFilter{From: day0.Add(24 * time.Hour), To: day0.Add(72 * time.Hour)},
			keep: func(m made) bool { return !m.at.Before(day0.Add(24*time.Hour)) && m.at.Before(day0.Add(72*time.Hour)) }},
		{name: "by everything", filter: store.CompositionFilter{Strategy: domain.Priority, Status: domain.StatusPending, From: day0.Add(10 * time.Hour)},
			keep: func(m made) bool {
				return m.strategy == domain.Priority && !m.failed && !m.at.Before(day0.Add(10*time.Hour))
			}},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 4, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				t.Parallel()
				// Newest first; equal times by id, as Postgres orders uuids.
				var kept []made
				for _, m := range all {
					if tt.keep(m) {
						kept = append(kept, m)
					}
				}
				slices.SortFunc(kept, func(a, b made) int {
					if c := b.at.Compare(a.at); c != 0 {
						return c
					}
					return strings.Compare(b.id, a.id)
				})
				var want []string
				for _, m := range kept {
					want = append(want, m.id)
				}
				f := tt.filter
				f.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					if pages > 30 {
						t.Fatal("the listing does not end")
					}
					page, err := st.ListCompositions(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(page.Compositions) > limit {
						t.Fatalf("got a page of %d, limit %d", len(page.Compositions), limit)
					}
					for _, c := range page.Compositions {
						got = append(got, c.ID)
					}
					if page.NextCursor == "" {
						break
					}
					f.Cursor = page.NextCursor
				}
				if !slices.Equal(got, want) {
					t.Errorf("limit %d: got\n%v\nwant\n%v", limit, got, want)
				}
			})
		}
	}

	_, err := st.ListCompositions(ctx, store.CompositionFilter{Cursor: "garbage"})
	wantError(t, err, domain.EINVALID, "cursor")
	_, err = st.ListCompositions(ctx, store.CompositionFilter{Limit: store.MaxPageSize + 1})
	wantError(t, err, domain.EINVALID, "limit")
}
