package httpapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
)

func TestLoadTokens(t *testing.T) {
	hash := HashToken("s3cret")
	tests := []struct{ name, body, want string }{
		{"a token in clear text", "tokens:\n  - {name: ci, role: composer, sha256: s3cret}\n", "tokens[0].sha256: want the 64 hex digits"},
		{"an unknown role", "tokens:\n  - {name: ci, role: root, sha256: " + hash + "}\n", `tokens[0].role: "root"`},
		{"a name twice", "tokens:\n  - {name: ci, role: admin, sha256: " + hash + "}\n  - {name: ci, role: analyst, sha256: " + hash + "}\n", "tokens[1].name"},
		{"an unknown field", "tokens:\n  - {name: ci, role: admin, token: s3cret}\n", "field token not found"},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "tokens.yaml")
		os.WriteFile(path, []byte(tt.body), 0o600)
		_, err := LoadTokens(path)
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want EINVALID mentioning %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") && tt.name != "a token in clear text" {
			t.Errorf("%s: the error repeats the token: %v", tt.name, err)
		}
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	os.WriteFile(path, []byte("tokens:\n  - {name: ci, role: composer, sha256: sha256:"+hash+"}\n"), 0o600)
	toks, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := toks.find("s3cret"); !ok || tok.Role != Composer || !tok.Role.may(Analyst) || tok.Role.may(Admin) {
		t.Errorf("find = %+v %v; a composer may read but not administer", tok, ok)
	}
	if _, ok := toks.find("s3cre"); ok {
		t.Error("a prefix of the token was accepted")
	}
}

func TestRateLimit(t *testing.T) {
	toks, _ := NewTokens()
	toks.Rate, toks.Burst = 10, 2
	now := time.Unix(0, 0)
	for i := range 2 {
		if _, ok := toks.allow("a", now); !ok {
			t.Fatalf("request %d of a burst of 2 refused", i)
		}
	}
	wait, ok := toks.allow("a", now)
	if ok || wait != 100*time.Millisecond {
		t.Errorf("the third at once: ok %v wait %v, want refused for 100ms (10/s)", ok, wait)
	}
	if _, ok := toks.allow("b", now); !ok {
		t.Error("another token shares a's bucket")
	}
	if _, ok := toks.allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Error("after 100ms a's bucket has not refilled one request")
	}
}
