package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// maxSeed keeps the fuzzers' seeds small enough to mutate quickly.
const maxSeed = 64 << 10

// addSeeds adds the test data and every table input as fuzz seeds.
func addSeeds(f *testing.F) {
	f.Helper()
	// The bad-input catalogue's manifests.
	catalogue, _ := filepath.Glob("../../testdata/bad/manifests/*.json")
	for _, file := range catalogue {
		if body, err := os.ReadFile(file); err == nil {
			f.Add(body)
		}
	}

	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range problemCases {
		if len(tc.input) <= maxSeed {
			f.Add([]byte(tc.input))
		}
	}
	for _, tc := range validCases {
		if len(tc.input) <= maxSeed {
			f.Add([]byte(tc.input))
		}
	}
}

func FuzzManifest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseBytes(data)
		if m2, err2 := Parse(bytes.NewReader(data)); !reflect.DeepEqual(m, m2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("Parse and ParseBytes disagree:\n%+v, %v\n%+v, %v", m2, err2, m, err)
		}
		if err != nil {
			checkInvalid(t, err)
			return
		}
		checkManifest(t, m)
	})
}

// checkInvalid checks the error an invalid manifest must produce.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	var e *domain.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, want *domain.Error", err, err)
	}
	if e.Code != domain.EINVALID || e.Message != "invalid manifest" {
		t.Fatalf("error code, message = %q, %q; want %q, %q", e.Code, e.Message, domain.EINVALID, "invalid manifest")
	}
	if len(e.Problems) == 0 || len(e.Problems) > maxProblems+1 {
		t.Fatalf("error lists %d problems, want 1 to %d", len(e.Problems), maxProblems+1)
	}
	for _, p := range e.Problems {
		if p.Where != "" && !strings.HasPrefix(p.Where, "/") || p.Message == "" {
			t.Fatalf("malformed problem %q: %q", p.Where, p.Message)
		}
	}
}

// checkManifest checks the invariants every parsed manifest satisfies.
func checkManifest(t *testing.T, m *domain.Manifest) {
	t.Helper()
	if m == nil {
		t.Fatal("ParseBytes returned neither a manifest nor an error")
	}
	if n := len(m.Sources); n < 1 || n > maxSources {
		t.Fatalf("manifest has %d sources, want 1 to %d", n, maxSources)
	}
	if !slices.Contains(domain.Strategies, m.ConflictResolution) {
		t.Fatalf("unknown strategy %q", m.ConflictResolution)
	}
	if l := m.ResourceLimits; l.CPUMillicores <= 0 || l.MemoryBytes <= 0 || l.DiskBytes <= 0 {
		t.Fatalf("limits %+v are not all positive", l)
	}
	if strings.TrimSpace(m.Name) == "" {
		t.Fatal("empty name")
	}
	refs := map[domain.SourceRef]bool{}
	for i, s := range m.Sources {
		if s.Index != i {
			t.Fatalf("sources[%d].Index = %d", i, s.Index)
		}
		if s.Type != domain.TemplateSource && s.Type != domain.LiveSource {
			t.Fatalf("sources[%d] has type %q", i, s.Type)
		}
		if s.Priority < -maxPriority || s.Priority > maxPriority || len(s.Tags) > maxTags {
			t.Fatalf("sources[%d] = %+v is out of bounds", i, s)
		}
		if refs[s.Ref()] {
			t.Fatalf("sources[%d] repeats %s", i, s.Ref())
		}
		refs[s.Ref()] = true
	}
}

// FuzzReadJSON checks the JSON reader against encoding/json: both accept the
// same documents (but for nesting deeper than the reader allows) and decode
// them to the same values, the last of repeated keys winning as in
// encoding/json.
func FuzzReadJSON(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		`0`, `-0.5e+10`, `"\u00e9\ud83d\ude00\ud800\udc00x\ud800"`, `{"a":1,"a":[true,false,null]}`,
		`[1, [2, [3]]]`, `{"":{}}`, "\"\xff\xfe\"", `" \/\b\f\n\r\t"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := readJSON(data)
		valid := json.Valid(data)
		switch {
		case err != nil && valid:
			if !err.limit {
				t.Fatalf("readJSON rejects valid JSON %q: %v", data, err)
			}
			return
		case err == nil && !valid:
			t.Fatalf("readJSON accepts invalid JSON %q", data)
		case err != nil:
			if err.off < 0 || err.off > len(data) || err.msg == "" {
				t.Fatalf("readJSON error %+v is not located within the input", err)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if got := plain(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("readJSON(%q) = %#v, encoding/json says %#v", data, got, want)
		}
	})
}

// plain returns v as encoding/json decodes JSON into an interface value.
func plain(v *value) any {
	switch v.kind {
	case kindNull:
		return nil
	case kindBool:
		return v.text == "true"
	case kindNumber:
		return json.Number(v.text)
	case kindString:
		return v.text
	case kindArray:
		a := []any{}
		for _, e := range v.elems {
			a = append(a, plain(e))
		}
		return a
	default:
		o := map[string]any{}
		for _, m := range v.members {
			o[m.name] = plain(m.value)
		}
		return o
	}
}
