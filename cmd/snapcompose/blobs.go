package main

import (
	"context"
	"io"

	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/live"
)

// blobSource fetches the files a plan places: a template's from its
// catalog directory, a live host's from its snapagent, both checked
// against their digests as they are read.
type blobSource struct {
	catalog *catalog.Catalog // nil: templates come from Postgres, which holds no files
	live    *live.Source     // nil: no live sources
}

var _ instantiate.Blobs = blobSource{}

func (b blobSource) Open(ctx context.Context, src domain.Source, f domain.PlanFile) (io.ReadCloser, error) {
	switch {
	case src.Type == domain.TemplateSource && b.catalog != nil:
		return b.catalog.Blob(ctx, src.ID, f.Path, f.Digest)
	case src.Type == domain.LiveSource && b.live != nil:
		return b.live.Blob(ctx, src.Host, f.Digest)
	}
	return nil, domain.Errorf(domain.EUNAVAILABLE, "%s: no way to fetch %s here", src.Ref(), f.Path)
}
