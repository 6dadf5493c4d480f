package features_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/manifest"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

var update = flag.Bool("update", false, "rewrite the golden file")

// recording settles with PRIORITY and keeps every decision it saw.
type recording struct {
	inner     domain.Resolver
	decisions []domain.Decision
}

func (r *recording) Strategy() domain.Strategy { return domain.Priority }

func (r *recording) Resolve(ctx context.Context, m *domain.Manifest, ds []domain.Decision) ([]domain.Choice, error) {
	r.decisions = append(r.decisions, ds...)
	return r.inner.Resolve(ctx, m, ds)
}

// TestGoldenSeed extracts every candidate of the seed templates' conflicts
// and compares with testdata/seed.golden.json (go test -update rewrites it).
func TestGoldenSeed(t *testing.T) {
	raw, err := os.ReadFile("../../examples/seed/manifest.templates.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParseBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	m.ConflictResolution = domain.Priority
	cat, err := catalog.Open("../../examples/seed/catalog")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recording{inner: agent.NewPriority()}
	if _, err := orchestrator.New().WithSource(domain.TemplateSource, cat).WithResolver(rec).Plan(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	env := features.Env{
		History: map[domain.SourceRef]features.SourceHistory{"template:template_a": {Compositions: 10, Healthy: 9}},
		Now:     time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
	}
	type row struct {
		Conflict string             `json:"conflict"`
		Action   domain.Action      `json:"action"`
		Winner   string             `json:"winner"`
		Features map[string]float32 `json:"features"`
	}
	doc := struct {
		Version int      `json:"version"`
		Schema  string   `json:"schema_hash"`
		Names   []string `json:"names"`
		Rows    []row    `json:"rows"`
	}{features.Version, features.SchemaHash(), features.Names[:], nil}
	for i := range rec.decisions {
		d := &rec.decisions[i]
		for j, c := range d.Candidates {
			if c.Rejected != "" {
				continue
			}
			v := features.Extract(m, d, j, env)
			if len(v) != features.Count {
				t.Fatalf("vector of %d, want %d", len(v), features.Count)
			}
			r := row{Conflict: d.Conflict.Key, Action: c.Resolution.Action, Features: map[string]float32{}}
			if c.Resolution.Winner != nil {
				r.Winner = string(*c.Resolution.Winner)
			}
			for k, x := range v {
				if x != 0 { // zeros are left out to keep the file readable
					r.Features[features.Names[k]] = x
				}
			}
			doc.Rows = append(doc.Rows, r)
		}
	}
	got, _ := json.MarshalIndent(doc, "", "  ")
	got = append(got, '\n')
	path := filepath.Join("testdata", "seed.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/features -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("feature vectors differ from %s; if intended, bump features.Version when a meaning changed and run with -update", path)
	}
}

func TestSchema(t *testing.T) {
	seen := map[string]bool{}
	for i, n := range features.Names {
		if n == "" || seen[n] || strings.ToLower(n) != n {
			t.Errorf("feature %d has name %q: want unique lower-case names", i, n)
		}
		seen[n] = true
	}
	if h := features.SchemaHash(); !strings.HasPrefix(h, "sha256:") || len(h) != 71 {
		t.Errorf("schema hash %q", h)
	}
}

func TestKeyClassAndEdges(t *testing.T) {
	m := &domain.Manifest{ResourceLimits: domain.Resources{CPUMillicores: 1000, MemoryBytes: 1 << 30},
		Sources: []domain.Source{{Type: domain.TemplateSource, ID: "a", Index: 0, Priority: 1}, {Type: domain.LiveSource, Host: "h", Path: "/p", Index: 1, Tags: []string{"data"}}}}
	a, h := domain.SourceRef("template:a"), domain.SourceRef("live:h:/p")
	cases := []struct {
		key  string
		kind domain.ClaimKind
		want [3]float32 // data, config, secret
	}{
		{"env:DATABASE_URL", domain.EnvClaim, [3]float32{1, 0, 1}},
		{"env:LOG_LEVEL", domain.EnvClaim, [3]float32{0, 1, 0}},
		{"env:API_TOKEN", domain.EnvClaim, [3]float32{0, 0, 1}},
		{"file:/srv/data/orders.csv", domain.FileClaim, [3]float32{1, 0, 0}},
		{"file:/etc/app/app.conf", domain.FileClaim, [3]float32{0, 1, 0}},
		{"port:tcp/80", domain.PortClaim, [3]float32{0, 0, 0}},
	}
	for _, c := range cases {
		d := &domain.Decision{
			Conflict:   domain.Conflict{Kind: c.kind, Key: c.key, Claimants: []domain.Claimant{{Source: a}, {Source: h}}},
			Candidates: []domain.Candidate{{Resolution: domain.Resolution{Action: domain.Keep, Winner: &h}}},
			Context:    domain.NewDecisionContext(nil, map[domain.SourceRef]time.Time{h: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, 1),
		}
		v := features.Extract(m, d, 0, features.Env{Now: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)})
		got := [3]float32{v[features.KeyDataLike], v[features.KeyConfigLike], v[features.KeySecret]}
		if got != c.want {
			t.Errorf("%s: data/config/secret = %v, want %v", c.key, got, c.want)
		}
		if v[features.WinnerLive] != 1 || v[features.WinnerLast] != 1 || v[features.WinnerFirst] != 0 || v[features.WinnerDataTag] != 1 {
			t.Errorf("%s: winner flags %v", c.key, v)
		}
		if age := v[features.WinnerCaptureAge]; fmt.Sprintf("%.4f", age) != "1.3863" { // log(1+3h)
			t.Errorf("capture age feature %v, want log(4)", age)
		}
		if v[features.WinnerSuccessRate] != 0.5 {
			t.Errorf("no history should read 0.5, got %v", v[features.WinnerSuccessRate])
		}
	}
}
