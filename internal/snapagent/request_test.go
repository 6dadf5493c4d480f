package snapagent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/snapcompose/snapcompose/internal/domain"
)

func TestParseCaptureRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    string // the path; "" when an error is wanted
		wantErr string // in the error message
	}{
		{"simple", `{"path":"/var/app"}`, "/var/app", ""},
		{"whitespace", " \n{ \"path\" : \"/var/app\" }\n ", "/var/app", ""},
		{"escaped", `{"path":"/var/\u0061pp"}`, "/var/app", ""},
		{"not cleaned yet", `{"path":"//var/./app/"}`, "//var/./app/", ""},
		{"empty body", ``, "", "not JSON"},
		{"null", `null`, "", "JSON object"},
		{"array", `["/var/app"]`, "", "JSON object"},
		{"string", `"/var/app"`, "", "JSON object"},
		{"empty object", `{}`, "", "required"},
		{"unknown field", `{"path":"/a","x":1}`, "", `unknown field "x"`},
		{"wrong case", `{"Path":"/a"}`, "", `unknown field "Path"`},
		{"twice", `{"path":"/a","path":"/b"}`, "", "twice"},
		{"null path", `{"path":null}`, "", "must be a string"},
		{"number path", `{"path":1}`, "", "must be a string"},
		{"object path", `{"path":{}}`, "", "must be a string"},
		{"trailing object", `{"path":"/a"}{}`, "", "after the JSON object"},
		{"trailing garbage", `{"path":"/a"}x`, "", "after the JSON object"},
		{"unterminated", `{"path":"/a"`, "", "malformed"},
		{"trailing comma", `{"path":"/a",}`, "", ""},
		{"missing colon", `{"path" "/a"}`, "", ""},
		{"invalid UTF-8", "{\"path\":\"/a\xff\"}", "", "UTF-8"},
		{"empty path", `{"path":""}`, "", "required"},
		{"relative", `{"path":"a/b"}`, "", "not absolute"},
		{"dotdot", `{"path":"/a/../b"}`, "", `".."`},
		{"NUL", `{"path":"/a\u0000b"}`, "", "NUL"},
		{"long", `{"path":"/` + strings.Repeat("a", MaxPathBytes) + `"}`, "", "limit"},
		{"longest", `{"path":"/` + strings.Repeat("a", MaxPathBytes-1) + `"}`, "/" + strings.Repeat("a", MaxPathBytes-1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := ParseCaptureRequest([]byte(tt.body))
			if tt.want != "" {
				if err != nil || req.Path != tt.want {
					t.Fatalf("got %q, %v; want %q", req.Path, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, path %q", req.Path)
			}
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("error code = %s, want invalid", domain.ErrorCode(err))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseCaptureRequest(f *testing.F) {
	// The bad-input catalogue's agent requests.
	catalogue, _ := filepath.Glob("../../testdata/bad/agent/*.json")
	for _, file := range catalogue {
		if body, err := os.ReadFile(file); err == nil {
			f.Add(body)
		}
	}

	for _, seed := range []string{
		`{"path":"/var/app"}`, `{"path":"/a/../b"}`, `{"path":"/a\u0000"}`, `{"path":null}`,
		`{"path":"/a","path":"/b"}`, `{"Path":"/a"}`, `{}`, `[]`, `{"path":"/a"} x`, "{\"path\":\"/\xff\"}",
		`{"path":"//x/./y/"}`, `{"path":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseCaptureRequest(body)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("error code %s for %q: %v", domain.ErrorCode(err), body, err)
			}
			return
		}
		p := req.Path
		if p == "" || p[0] != '/' || len(p) > MaxPathBytes || strings.IndexByte(p, 0) >= 0 || !utf8.ValidString(p) {
			t.Fatalf("accepted bad path %q from %q", p, body)
		}
		for _, elem := range strings.Split(p, "/") {
			if elem == ".." {
				t.Fatalf("accepted a path with ..: %q", p)
			}
		}
		// Cleaning cannot take an accepted path above where it names.
		if clean := filepath.Clean(p); clean != "/" && !strings.HasPrefix(clean, "/") {
			t.Fatalf("clean(%q) = %q", p, clean)
		}
		// What was accepted survives a round trip.
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := ParseCaptureRequest(again)
		if err != nil || req2 != req {
			t.Fatalf("round trip of %q: %q, %v", body, req2.Path, err)
		}
	})
}
