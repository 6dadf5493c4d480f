package instantiate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/manifest"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

const seed = "../../examples/seed"

// catalogBlobs serves template files from the catalog.
type catalogBlobs struct{ c *catalog.Catalog }

func (b catalogBlobs) Open(ctx context.Context, src domain.Source, f domain.PlanFile) (io.ReadCloser, error) {
	return b.c.Blob(ctx, src.ID, f.Path, f.Digest)
}

func composeSeed(t *testing.T, strategy domain.Strategy) (*domain.PlanRecord, *catalog.Catalog) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(seed, "manifest.templates.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParseBytes(body)
	if err != nil {
		t.Fatal(err)
	}
	m.ConflictResolution = strategy
	cat, err := catalog.Open(filepath.Join(seed, "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := agent.New(strategy)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := orchestrator.New().WithSource(domain.TemplateSource, cat).WithResolver(r).Compose(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return rec, cat
}

func TestWriteSeedLoadsBack(t *testing.T) {
	for _, strategy := range []domain.Strategy{domain.FirstWin, domain.LastWin, domain.Priority} {
		t.Run(string(strategy), func(t *testing.T) {
			rec, cat := composeSeed(t, strategy)
			dir := filepath.Join(t.TempDir(), "out")
			res, err := instantiate.Write(context.Background(), rec, dir, instantiate.Options{Blobs: catalogBlobs{cat}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Services != len(rec.Plan.Services) || res.Files != len(rec.Plan.Files) || res.Files == 0 {
				t.Errorf("result %+v for %d services, %d files", res, len(rec.Plan.Services), len(rec.Plan.Files))
			}
			project, err := instantiate.Load(context.Background(), dir)
			if err != nil {
				t.Fatalf("compose.yaml does not load back: %v", err)
			}
			if len(project.Services) != len(rec.Plan.Services) {
				t.Fatalf("%d services loaded, plan has %d", len(project.Services), len(rec.Plan.Services))
			}
			for _, ps := range rec.Plan.Services {
				sc, ok := project.Services[ps.Name]
				if !ok {
					t.Errorf("service %s is not in compose.yaml", ps.Name)
					continue
				}
				if sc.Image != ps.Image {
					t.Errorf("%s: image %q, plan says %q", ps.Name, sc.Image, ps.Image)
				}
				if len(sc.Ports) != len(ps.Ports) {
					t.Errorf("%s: %d ports, plan says %d", ps.Name, len(sc.Ports), len(ps.Ports))
				}
				for i, p := range ps.Ports {
					if i < len(sc.Ports) && (sc.Ports[i].Published != strconv.Itoa(p.Host) || int(sc.Ports[i].Target) != p.Container) {
						t.Errorf("%s: port %+v, plan says %+v", ps.Name, sc.Ports[i], p)
					}
				}
				lim := sc.Deploy.Resources.Limits
				if got := int64(float64(lim.NanoCPUs)*1000 + 0.5); got != ps.Allocation.CPUMillicores {
					t.Errorf("%s: cpus limit %v, allocation %dm", ps.Name, lim.NanoCPUs, ps.Allocation.CPUMillicores)
				}
				if int64(lim.MemoryBytes) != ps.Allocation.MemoryBytes {
					t.Errorf("%s: memory limit %d, allocation %d", ps.Name, lim.MemoryBytes, ps.Allocation.MemoryBytes)
				}
				if len(sc.DependsOn) != len(ps.DependsOn) {
					t.Errorf("%s: depends_on %v, plan says %v", ps.Name, sc.DependsOn, ps.DependsOn)
				}
				for _, d := range ps.DependsOn {
					if _, ok := project.Services[d]; !ok {
						t.Errorf("%s depends on %s, which is not in compose.yaml", ps.Name, d)
					}
				}
			}
			// Every file is there with the plan's digest.
			for _, f := range rec.Plan.Files {
				b, err := os.ReadFile(filepath.Join(dir, "rootfs", f.Path))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(b)
				if "sha256:"+hex.EncodeToString(sum[:]) != f.Digest {
					t.Errorf("%s: content does not match the plan's digest", f.Path)
				}
			}
			env, err := dotenv.Read(filepath.Join(dir, ".env"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range rec.Plan.Env {
				if e.Value != nil && env[e.Name] != *e.Value {
					t.Errorf(".env %s = %q, plan says %q", e.Name, env[e.Name], *e.Value)
				}
				if e.Value == nil && env[e.Name] == "" {
					t.Errorf(".env %s: the template's secret is not written", e.Name)
				}
			}
			if st, err := os.Stat(filepath.Join(dir, ".env")); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf(".env mode: %v %v", st.Mode(), err)
			}
			if _, err := os.Stat(filepath.Join(dir, "plan.json")); err != nil {
				t.Error(err)
			}
		})
	}
}

// A second Write replaces the directory whole; a failing one leaves the
// previous content and no partial directory behind.
func TestWriteIsAtomic(t *testing.T) {
	rec, cat := composeSeed(t, domain.Priority)
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := instantiate.Write(context.Background(), rec, dir, instantiate.Options{Blobs: catalogBlobs{cat}}); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := instantiate.Write(context.Background(), rec, dir, instantiate.Options{Blobs: catalogBlobs{cat}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the second write kept the first's extra file: %v", err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := *rec.Plan
	bad.Files = append([]domain.PlanFile{}, rec.Plan.Files...)
	bad.Files[0].Digest = "sha256:" + strings.Repeat("0", 64)
	badRec := *rec
	badRec.Plan = &bad
	_, err := instantiate.Write(context.Background(), &badRec, dir, instantiate.Options{Blobs: catalogBlobs{cat}})
	if err == nil || !strings.Contains(err.Error(), bad.Files[0].Path) {
		t.Fatalf("a file whose content does not match: err = %v, want one naming %s", err, bad.Files[0].Path)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("a failed write touched the previous directory: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left behind: %v", names)
	}
}

// A "$" a template means literally ("$$" in its file) stays literal in
// compose.yaml, and a .env value with quotes and dollars reads back as is.
func TestWriteKeepsDollarsLiteral(t *testing.T) {
	dir := t.TempDir()
	tmpl := `x-snapcompose:
  id: dollars
  env:
    GREETING: "it's $$5 \"cheap\""
services:
  app:
    image: busybox:1.36
    command: ["sh", "-c", "echo $$HOME and $${USER}"]
    environment:
      - GREETING
      - PRICE=$$5
`
	if err := os.WriteFile(filepath.Join(dir, "dollars.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParseBytes([]byte(`{"name": "dollars", "sources": [{"type": "template", "id": "dollars"}],
		"conflict_resolution": "PRIORITY", "resource_limits": {"cpu": "2", "memory": "1GB", "disk": "1GB"}}`))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := agent.New(domain.Priority)
	rec, err := orchestrator.New().WithSource(domain.TemplateSource, cat).WithResolver(r).Compose(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := instantiate.Write(context.Background(), rec, out, instantiate.Options{Blobs: catalogBlobs{cat}}); err != nil {
		t.Fatal(err)
	}
	project, err := instantiate.Load(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	app := project.Services["app"]
	if got := strings.Join(app.Command, " "); got != "sh -c echo $HOME and ${USER}" {
		t.Errorf("command = %q", got)
	}
	if v := app.Environment["PRICE"]; v == nil || *v != "$5" {
		t.Errorf("PRICE = %v", v)
	}
	if v := app.Environment["GREETING"]; v == nil || *v != `it's $5 "cheap"` {
		t.Errorf("GREETING from .env = %v", v)
	}
}

// A disk that fills up while the environment is written leaves no
// partial directory behind: on a real tmpfs of 8 KiB when this process may
// mount one, and always with a file whose reading fails with ENOSPC.
func TestFullDiskLeavesNothing(t *testing.T) {
	rec, cat := composeSeed(t, domain.Priority)
	check := func(parent string, blobs instantiate.Blobs) {
		t.Helper()
		dir := filepath.Join(parent, "out")
		_, err := instantiate.Write(context.Background(), rec, dir, instantiate.Options{Blobs: blobs})
		if err == nil {
			t.Fatal("writing onto a full disk succeeded")
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("the error does not say the disk is full: %v", err)
		}
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "out") {
				t.Errorf("left behind: %s", e.Name())
			}
		}
	}
	check(t.TempDir(), fullBlobs{catalogBlobs{cat}})

	small := t.TempDir()
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=8k"); err != nil {
		t.Logf("no tmpfs (%v): the real full disk is not tried", err)
		return
	}
	defer syscall.Unmount(small, 0)
	check(small, catalogBlobs{cat})
}

// fullBlobs fails every file half way with ENOSPC, as a full disk would.
type fullBlobs struct{ catalogBlobs }

func (b fullBlobs) Open(ctx context.Context, src domain.Source, f domain.PlanFile) (io.ReadCloser, error) {
	r, err := b.catalogBlobs.Open(ctx, src, f)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(r, 10), errReader{syscall.ENOSPC}), r}, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A plan whose file paths would lead out of the output directory is
// refused before anything is written there.
func TestWriteRefusesPathsOutOfTheDirectory(t *testing.T) {
	rec, cat := composeSeed(t, domain.Priority)
	for _, p := range []string{"/../../escaped", "relative/file", "/etc/../../escaped", "/"} {
		bad := *rec.Plan
		bad.Files = append([]domain.PlanFile{}, rec.Plan.Files...)
		bad.Files[0].Path = p
		badRec := *rec
		badRec.Plan = &bad
		parent := t.TempDir()
		_, err := instantiate.Write(context.Background(), &badRec, filepath.Join(parent, "out"), instantiate.Options{Blobs: catalogBlobs{cat}})
		if err == nil || !strings.Contains(err.Error(), "not an absolute, clean path") {
			t.Errorf("file path %q: err = %v", p, err)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("file path %q: %d entries left in the parent", p, len(entries))
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(parent), "escaped")); err == nil {
			t.Errorf("file path %q escaped the output directory", p)
		}
	}
}
