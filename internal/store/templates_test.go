package store_test

import (
	"slices"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

func TestUpsertTemplate(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	web := func(body string) store.Template {
		return store.Template{ID: "web", Description: "web tier", Tags: []string{"web", "http"}, Body: body}
	}
	// Each step upserts a body and says which version it must get, and how
	// many versions exist after it.
	steps := []struct {
		name     string
		body     string
		version  int
		versions int
	}{
		{name: "first body is version 1", body: "services: {a: {}}", version: 1, versions: 1},
		{name: "the same body stays version 1", body: "services: {a: {}}", version: 1, versions: 1},
		{name: "a changed body is version 2", body: "services: {b: {}}", version: 2, versions: 2},
		{name: "a reverted body is version 1 again", body: "services: {a: {}}", version: 1, versions: 2},
		{name: "a new body after the revert is version 3", body: "services: {c: {}}", version: 3, versions: 3},
	}
	for _, step := range steps {
		got, err := st.UpsertTemplate(ctx, web(step.body))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got.Version != step.version || got.Body != step.body || got.Digest != domain.Digest([]byte(step.body)) || !got.Current {
			t.Errorf("%s: got version %d body %q digest %s current %v, want version %d", step.name, got.Version, got.Body, got.Digest, got.Current, step.version)
		}
		latest, err := st.LatestTemplate(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if latest.Version != step.version || latest.Description != "web tier" || !slices.Equal(latest.Tags, []string{"web", "http"}) {
			t.Errorf("%s: LatestTemplate = %+v, want version %d", step.name, latest, step.version)
		}
		versions, err := st.TemplateVersions(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) != step.versions {
			t.Errorf("%s: got %d versions, want %d", step.name, len(versions), step.versions)
		}
		for i, v := range versions {
			if v.Version != i+1 || v.Current != (v.Version == step.version) {
				t.Errorf("%s: version %d of the list is %d (current %v)", step.name, i, v.Version, v.Current)
			}
		}
	}

	// Description and tags change without a new version.
	got, err := st.UpsertTemplate(ctx, store.Template{ID: "web", Description: "new words", Body: "services: {c: {}}"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || got.Description != "new words" || len(got.Tags) != 0 {
		t.Errorf("got %+v, want version 3 with the new description and no tags", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	_, err := st.LatestTemplate(ctx, "nope")
	wantError(t, err, domain.ENOTFOUND, "nope")
	_, err = st.TemplateVersions(ctx, "nope")
	wantError(t, err, domain.ENOTFOUND, "nope")
	_, err = st.UpsertTemplate(ctx, store.Template{ID: "../etc", Body: "x"})
	wantError(t, err, domain.EINVALID, "templates_id_check")
}
