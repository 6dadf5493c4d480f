package catalog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// FuzzTemplate feeds LoadTemplate arbitrary bodies and names. It must never
// panic, must reject bad input with an EINVALID *domain.Error naming the
// file, and what it accepts must be well-formed.
func FuzzTemplate(f *testing.F) {
	// The bad-input catalogue's templates.
	catalogue, _ := filepath.Glob("../../testdata/bad/templates/*.yaml")
	for _, file := range catalogue {
		if body, err := os.ReadFile(file); err == nil {
			f.Add(filepath.Base(file), body)
		}
	}

	for _, id := range []string{"template_a", "template_b"} {
		name := id + "/compose.yaml"
		body, err := os.ReadFile(filepath.Join(exampleDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(name, body)
	}
	bad, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range bad {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Base(file), body)
	}

	f.Fuzz(func(t *testing.T, name string, body []byte) {
		snap, err := LoadTemplate(context.Background(), name, body)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EINVALID {
				t.Fatalf("got %T %v, want an EINVALID *domain.Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Fatalf("got %q, want it to begin with the file name %q", err, name)
			}
			return
		}
		if !slices.IsSortedFunc(snap.Services, func(a, b domain.Service) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("services not sorted by name")
		}
		for _, s := range snap.Services {
			if !strings.HasPrefix(s.Runtime, "sha256:") || !strings.HasPrefix(s.Digest, "sha256:") {
				t.Errorf("service %s: got runtime %q and digest %q, want sha256 digests", s.Name, s.Runtime, s.Digest)
			}
			if s.Minimum.CPUMillicores > s.Requested.CPUMillicores || s.Minimum.MemoryBytes > s.Requested.MemoryBytes || s.Minimum.DiskBytes > s.Requested.DiskBytes {
				t.Errorf("service %s: got minimum %+v above requested %+v", s.Name, s.Minimum, s.Requested)
			}
			for _, p := range s.Ports {
				if p.Host < 1 || p.Host > 65535 || p.Container < 1 || p.Container > 65535 || (p.Protocol != "tcp" && p.Protocol != "udp") {
					t.Errorf("service %s: got port %+v", s.Name, p)
				}
			}
			for _, d := range s.DependsOn {
				if !slices.ContainsFunc(snap.Services, func(o domain.Service) bool { return o.Name == d }) {
					t.Errorf("service %s: depends on %q, which is not in the snapshot", s.Name, d)
				}
			}
		}
	})
}
