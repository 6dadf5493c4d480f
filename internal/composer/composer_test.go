package composer_test

import (
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
)

func setup(t *testing.T, snaps ...[]domain.Service) *composer.Composition {
	t.Helper()
	m := &domain.Manifest{Name: "t", ConflictResolution: domain.FirstWin,
		ResourceLimits: domain.Resources{CPUMillicores: 1000, MemoryBytes: 1 << 30, DiskBytes: 1 << 30}}
	var ss []*domain.Snapshot
	for i, svcs := range snaps {
		src := domain.Source{Type: domain.TemplateSource, ID: string(rune('a' + i)), Index: i}
		m.Sources = append(m.Sources, src)
		for j := range svcs {
			svcs[j].Digest = svcs[j].Name + svcs[j].Runtime + svcs[j].Image
		}
		ss = append(ss, &domain.Snapshot{Source: src, Services: svcs})
	}
	c, err := composer.New(m, ss)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCandidatesSayWhyTheyAreRejected(t *testing.T) {
	t.Parallel()
	c := setup(t,
		[]domain.Service{{Name: "db", Image: "postgres:16", Runtime: "pg"}},
		[]domain.Service{{Name: "db", Image: "mysql:8", Runtime: "my"}},
	)
	ds := c.Decisions(domain.ServiceClaim)
	if len(ds) != 1 {
		t.Fatalf("decisions = %d, want 1", len(ds))
	}
	var actions []string
	for _, cand := range ds[0].Candidates {
		actions = append(actions, string(cand.Resolution.Action)+"@"+string(*cand.Resolution.Winner))
		if cand.Resolution.Action == domain.Share && !strings.Contains(cand.Rejected, "runs image mysql:8, not postgres:16") &&
			!strings.Contains(cand.Rejected, "runs image postgres:16, not mysql:8") {
			t.Errorf("share rejected = %q, want the image difference named", cand.Rejected)
		}
	}
	want := "share@template:a rename@template:a drop@template:a share@template:b rename@template:b drop@template:b"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("candidates = %s\nwant %s", got, want)
	}
	for i, cand := range ds[0].Candidates {
		if cand.Rejected != "" {
			if err := c.Apply(ds[0], domain.Choice{Candidate: i}); err == nil {
				t.Errorf("Apply accepted the rejected candidate %d", i)
			}
		}
	}
	if err := c.Apply(ds[0], domain.Choice{Candidate: 99}); err == nil {
		t.Errorf("Apply accepted an out-of-range candidate")
	}
}

func TestComputeDemandOverLimit(t *testing.T) {
	t.Parallel()
	big := domain.Resources{CPUMillicores: 800, MemoryBytes: 1 << 29, DiskBytes: 1}
	c := setup(t, []domain.Service{{Name: "x", Requested: big, Minimum: big}}, []domain.Service{{Name: "y", Requested: big, Minimum: big}})
	for _, tt := range []struct {
		kind domain.ClaimKind
		want int
	}{{domain.CPUClaim, 1}, {domain.MemoryClaim, 0}, {domain.DiskClaim, 0}} {
		ds := c.Decisions(tt.kind)
		if len(ds) != tt.want {
			t.Fatalf("%s decisions = %d, want %d", tt.kind, len(ds), tt.want)
		}
		if tt.want == 1 && !strings.Contains(ds[0].Candidates[0].Resolution.Detail, "even the services' minimums (1.6 cores) do not fit") {
			t.Errorf("detail = %q", ds[0].Candidates[0].Resolution.Detail)
		}
	}
}

func TestGraphCycle(t *testing.T) {
	t.Parallel()
	c := setup(t, []domain.Service{
		{Name: "a", DependsOn: []string{"b"}}, {Name: "b", DependsOn: []string{"c"}}, {Name: "c", DependsOn: []string{"a"}}, {Name: "d", Volumes: []string{"v"}},
	})
	g, err := c.Graph()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.Cycle(), " -> "); got != "a -> b -> c -> a" {
		t.Errorf("cycle = %q, want a -> b -> c -> a", got)
	}
	if got := g.Needs("d"); len(got) != 1 || got[0] != "volume:v" {
		t.Errorf("d needs %v, want [volume:v]", got)
	}
	if _, err := c.Plan(); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Plan err = %v, want EINVALID for a cycle", err)
	}
}
