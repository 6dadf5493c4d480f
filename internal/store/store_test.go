package store_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
)

// setup returns a store on a fresh migrated database of the test's own.
func setup(t testing.TB) (*store.Store, context.Context) {
	t.Helper()
	return store.New(pgtest.NewPool(t)), context.Background()
}

// wantError fails t unless err carries code and its message mentions each
// of the words (a constraint name, say).
func wantError(t testing.TB, err error, code string, words ...string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// fixture is a small composition with a conflict of every kind: two
// templates and a live capture sharing service, port, env, file and volume
// names, an optional service that loses and is dropped, a secret variable,
// and cpu demand over the limit.
type fixture struct {
	manifest *domain.Manifest
	raw      []byte
	snaps    []*domain.Snapshot
}

func service(name, image string, cpu int64, opts ...func(*domain.Service)) domain.Service {
	s := domain.Service{Name: name, Image: image, Runtime: image,
		Requested: domain.Resources{CPUMillicores: cpu, MemoryBytes: 1 << 30, DiskBytes: 2e9},
		Minimum:   domain.Resources{CPUMillicores: cpu / 2, MemoryBytes: 512 << 20, DiskBytes: 1e9}}
	for _, o := range opts {
		o(&s)
	}
	s.Digest = domain.Digest(fmt.Appendf(nil, "%s|%v|%v|%v|%v|%v", s.Runtime, s.Ports, s.DependsOn, s.Volumes, s.Requested, s.Optional))
	return s
}

func publish(host, container int) func(*domain.Service) {
	return func(s *domain.Service) {
		s.Ports = append(s.Ports, domain.Port{Host: host, Container: container, Protocol: "tcp"})
	}
}
func dependsOn(names ...string) func(*domain.Service) {
	return func(s *domain.Service) { s.DependsOn = append(s.DependsOn, names...) }
}
func mount(vols ...string) func(*domain.Service) {
	return func(s *domain.Service) { s.Volumes = append(s.Volumes, vols...) }
}
func optional(s *domain.Service) { s.Optional = true }

func newFixture() fixture {
	sources := []domain.Source{
		{Type: domain.TemplateSource, ID: "web", Priority: 10, Tags: []string{"web"}, Index: 0},
		{Type: domain.TemplateSource, ID: "db", Priority: 5, Index: 1},
		{Type: domain.LiveSource, Host: "prod-1", Path: "/srv/app", Priority: 1, Tags: []string{"live", "prod"}, Index: 2},
	}
	m := &domain.Manifest{
		Name: "shop", Description: "a shop", Sources: sources, ConflictResolution: domain.Priority,
		ResourceLimits: domain.Resources{CPUMillicores: 4000, MemoryBytes: 64 << 30, DiskBytes: 1e12},
	}
	raw := []byte(`{"name":"shop","description":"a shop","sources":[` +
		`{"type":"template","id":"web","priority":10,"tags":["web"]},` +
		`{"type":"template","id":"db","priority":5},` +
		`{"type":"live","host":"prod-1","path":"/srv/app","priority":1,"tags":["live","prod"]}],` +
		`"conflict_resolution":"PRIORITY","resource_limits":{"cpu":"4","memory":"64GiB","disk":"1TB"}}`)
	snaps := []*domain.Snapshot{
		{
			Source: sources[0], Description: "web tier", Tags: []string{"web"},
			Services: []domain.Service{
				service("web", "nginx:1.27", 1000, publish(8080, 80), dependsOn("db")),
				service("db", "postgres:16", 1000, mount("data")),
				service("cache", "redis:7", 500, optional),
			},
			Env:     []domain.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "DB_PASSWORD", Value: "hunter2-web"}},
			Files:   []domain.File{{Path: "/etc/app.conf", Digest: domain.Digest([]byte("a")), Size: 1, Mode: 0o644}},
			Volumes: []domain.Volume{{Name: "data", Digest: domain.Digest([]byte("local"))}},
		},
		{
			Source: sources[1], Description: "database",
			Services: []domain.Service{
				service("db", "postgres:15", 2000, mount("data")),
				service("cache", "memcached:1.6", 500, optional),
				service("admin", "pgadmin:8", 250, publish(8080, 80), dependsOn("db")),
			},
			Env:     []domain.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "DB_PASSWORD", Value: "hunter2-db"}},
			Files:   []domain.File{{Path: "/etc/app.conf", Digest: domain.Digest([]byte("b")), Size: 1, Mode: 0o600}},
			Volumes: []domain.Volume{{Name: "data", Digest: domain.Digest([]byte("ssd"))}},
		},
		{
			Source: sources[2], Description: "captured",
			Services: []domain.Service{
				service("worker", "shop-worker:3", 1500, dependsOn("db")),
				service("db", "postgres:14", 1000),
			},
			Env: []domain.EnvVar{{Name: "REGION", Value: "eu"}},
		},
	}
	return fixture{manifest: m, raw: raw, snaps: snaps}
}

// scored wraps a resolver to score every candidate, the way the learned
// agent does, so records carry scores and features.
type scored struct{ domain.Resolver }

func (s scored) Resolve(ctx context.Context, m *domain.Manifest, ds []domain.Decision) ([]domain.Choice, error) {
	chs, err := s.Resolver.Resolve(ctx, m, ds)
	if err != nil {
		return nil, err
	}
	for i := range chs {
		scores := make([]float64, len(ds[i].Candidates))
		for j := range scores {
			scores[j] = 0.1 + 0.5*float64(j)/float64(len(scores))
		}
		scores[chs[i].Candidate] = 0.9
		chs[i].Scores = scores
	}
	return chs, nil
}

const featureSchema = "sha256:test-features-v1"

// record composes f the way the orchestrator does and returns everything
// RecordPlan takes. With withFeatures, candidates carry scores and
// feature vectors.
func record(t testing.TB, m *domain.Manifest, snaps []*domain.Snapshot, withFeatures bool) *domain.PlanRecord {
	t.Helper()
	ctx := context.Background()
	comp, err := composer.New(m, snaps)
	if err != nil {
		t.Fatal(err)
	}
	var resolver domain.Resolver = agent.NewPriority()
	if withFeatures {
		resolver = scored{resolver}
	}
	rec := &domain.PlanRecord{Snapshots: snaps}
	for _, kind := range domain.ClaimKinds {
		rec.Claims = append(rec.Claims, comp.Claims(kind)...)
		decisions := comp.Decisions(kind)
		if len(decisions) == 0 {
			continue
		}
		choices, err := resolver.Resolve(ctx, m, decisions)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range decisions {
			if err := comp.Apply(d, choices[i]); err != nil {
				t.Fatal(err)
			}
		}
		rec.Decisions = append(rec.Decisions, decisions...)
		rec.Choices = append(rec.Choices, choices...)
	}
	if rec.Plan, err = comp.Plan(); err != nil {
		t.Fatal(err)
	}
	if withFeatures {
		rec.FeatureSchema = featureSchema
		for i, d := range rec.Decisions {
			fs := make([][]float32, len(d.Candidates))
			for j := range fs {
				fs[j] = []float32{float32(i), float32(j), 0.25, -1.5}
			}
			rec.Features = append(rec.Features, fs)
		}
	}
	// Live captures say when they were taken; templates leave it to the store.
	rec.CapturedAt = make([]time.Time, len(snaps))
	for i, s := range snaps {
		if s.Source.Type == domain.LiveSource {
			rec.CapturedAt[i] = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		}
	}
	return rec
}

// newComposition records f's composition and returns its id.
func newComposition(t testing.TB, st *store.Store, f fixture) string {
	t.Helper()
	id, err := st.CreateComposition(context.Background(), f.manifest, f.raw)
	if err != nil {
		t.Fatalf("CreateComposition: %v", err)
	}
	return id
}

// planned records f's composition with its plan and returns its id and record.
func planned(t testing.TB, st *store.Store, f fixture, withFeatures bool) (string, *domain.PlanRecord) {
	t.Helper()
	id := newComposition(t, st, f)
	rec := record(t, f.manifest, f.snaps, withFeatures)
	if err := st.RecordPlan(context.Background(), id, rec); err != nil {
		t.Fatalf("RecordPlan: %v", err)
	}
	return id, rec
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// testTime returns midnight UTC of day d of January 2025.
func testTime(d int) time.Time { return time.Date(2025, 1, 1+d, 0, 0, 0, 0, time.UTC) }
