package main

import (
	"context"
	"fmt"

	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/store"
)

// dbTemplates is the catalog kept in Postgres: templates put over the API
// are validated as catalog files are (compose-go, the x-snapcompose block),
// versioned by body, and served to compositions as template sources.
type dbTemplates struct{ st *store.Store }

var (
	_ httpapi.Templates     = dbTemplates{}
	_ domain.SnapshotSource = dbTemplates{}
)

func (d dbTemplates) Put(ctx context.Context, id string, body []byte) (httpapi.TemplateVersion, error) {
	snap, err := catalog.LoadTemplate(ctx, id+".yaml", body)
	if err != nil {
		return httpapi.TemplateVersion{}, err
	}
	t, err := d.st.UpsertTemplate(ctx, store.Template{ID: id, Description: snap.Description, Tags: snap.Tags, Body: string(body)})
	if err != nil {
		return httpapi.TemplateVersion{}, err
	}
	return view(t), nil
}

func (d dbTemplates) Get(ctx context.Context, id string, v int) (httpapi.TemplateVersion, error) {
	if v == 0 {
		t, err := d.st.LatestTemplate(ctx, id)
		return view(t), err
	}
	vs, err := d.st.TemplateVersions(ctx, id)
	if err != nil {
		return httpapi.TemplateVersion{}, err
	}
	for _, t := range vs {
		if t.Version == v {
			return view(t), nil
		}
	}
	return httpapi.TemplateVersion{}, domain.Errorf(domain.ENOTFOUND, "template %q has no version %d (it has 1 to %d)", id, v, len(vs))
}

func (d dbTemplates) Delete(ctx context.Context, id string) error {
	return d.st.DeleteTemplate(ctx, id)
}

func (d dbTemplates) Versions(ctx context.Context, id string) ([]httpapi.TemplateVersion, error) {
	vs, err := d.st.TemplateVersions(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.TemplateVersion, len(vs))
	for i, t := range vs {
		out[i] = view(t)
		out[i].Body = ""
	}
	return out, nil
}

// Retrieve implements domain.SnapshotSource: the current version of the
// template, loaded as a catalog file is.
func (d dbTemplates) Retrieve(ctx context.Context, src domain.Source) (*domain.Snapshot, error) {
	t, err := d.st.LatestTemplate(ctx, src.ID)
	if err != nil {
		return nil, err
	}
	snap, err := catalog.LoadTemplate(ctx, src.ID+".yaml", []byte(t.Body))
	if err != nil {
		return nil, fmt.Errorf("stored template %s version %d: %w", src.ID, t.Version, err)
	}
	snap.Source = src
	return snap, nil
}

func view(t store.Template) httpapi.TemplateVersion {
	return httpapi.TemplateVersion{ID: t.ID, Version: t.Version, Description: t.Description, Tags: t.Tags,
		Digest: t.Digest, Current: t.Current, CreatedAt: t.CreatedAt, Body: t.Body}
}
