package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Role is what a token may do.
type Role string

const (
	Analyst  Role = "analyst"  // reads: history, outcomes, the model's status
	Composer Role = "composer" // and composes: compositions, the agent API
	Admin    Role = "admin"    // and administers: models, templates, pools
)

// roles lists the roles in order of power.
var roles = []Role{Analyst, Composer, Admin}

// may reports whether r includes need.
func (r Role) may(need Role) bool {
	return slices.Index(roles, r) >= slices.Index(roles, need)
}

// Token is one bearer token the server accepts, kept as the SHA-256 of
// the token: the tokens file never holds a token in clear text.
type Token struct {
	Name   string `yaml:"name"`
	Role   Role   `yaml:"role"`
	SHA256 string `yaml:"sha256"`
	hash   []byte
}

// Tokens are the accepted tokens, with a rate limit per token.
type Tokens struct {
	tokens []Token
	// Rate and Burst: requests per second a token may make on average, and
	// at once.
	Rate  float64
	Burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

// DefaultRate and DefaultBurst bound each token's requests.
const (
	DefaultRate  = 50
	DefaultBurst = 100
)

// NewTokens accepts tokens.
func NewTokens(tokens ...Token) (*Tokens, error) {
	t := &Tokens{Rate: DefaultRate, Burst: DefaultBurst, buckets: map[string]*bucket{}}
	names := map[string]bool{}
	for i, tok := range tokens {
		where := fmt.Sprintf("tokens[%d]", i)
		if tok.Name == "" || names[tok.Name] {
			return nil, domain.Errorf(domain.EINVALID, "%s.name: want a name of its own (%q)", where, tok.Name)
		}
		names[tok.Name] = true
		if !slices.Contains(roles, tok.Role) {
			return nil, domain.Errorf(domain.EINVALID, "%s.role: %q: want analyst, composer or admin", where, tok.Role)
		}
		h, err := hex.DecodeString(strings.TrimPrefix(tok.SHA256, "sha256:"))
		if err != nil || len(h) != sha256.Size {
			return nil, domain.Errorf(domain.EINVALID, "%s.sha256: want the 64 hex digits of the token's SHA-256 (sha256sum), not the token", where)
		}
		tok.hash = h
		t.tokens = append(t.tokens, tok)
	}
	return t, nil
}

// LoadTokens reads a tokens file:
//
//	tokens:
//	  - {name: ci, role: composer, sha256: <hex of the token's SHA-256>}
func LoadTokens(path string) (*Tokens, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "tokens file: %v", err)
	}
	var doc struct {
		Tokens []Token `yaml:"tokens"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, domain.Errorf(domain.EINVALID, "tokens file %s: %v", path, err)
	}
	t, err := NewTokens(doc.Tokens...)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

// HashToken returns the hex SHA-256 a tokens file holds for token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// find returns the token whose hash matches, comparing in constant time.
func (t *Tokens) find(token string) (Token, bool) {
	h := sha256.Sum256([]byte(token))
	var found Token
	ok := false
	for _, tok := range t.tokens {
		if subtle.ConstantTimeCompare(h[:], tok.hash) == 1 {
			found, ok = tok, true
		}
	}
	return found, ok
}

// allow takes one request from the token's bucket, or says how long to
// wait.
func (t *Tokens) allow(name string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[name]
	if b == nil {
		b = &bucket{level: t.Burst, at: now}
		t.buckets[name] = b
	}
	b.level = math.Min(t.Burst, b.level+now.Sub(b.at).Seconds()*t.Rate)
	b.at = now
	if b.level >= 1 {
		b.level--
		return 0, true
	}
	return time.Duration((1 - b.level) / t.Rate * float64(time.Second)), false
}

type bucket struct {
	level float64
	at    time.Time
}

type principalKey struct{}

// authenticate admits a request with a known bearer token under its rate
// limit; others get 401 or 429.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || raw == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="snapcompose"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Code: "unauthenticated", Message: "this needs an Authorization: Bearer <token> header"})
			return
		}
		tok, ok := s.Tokens.find(strings.TrimSpace(raw))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="snapcompose", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Code: "unauthenticated", Message: "the bearer token is not one this server accepts"})
			return
		}
		if wait, ok := s.Tokens.allow(tok.Name, time.Now()); !ok {
			w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
			writeJSON(w, http.StatusTooManyRequests, errorBody{Code: "rate_limited",
				Message: fmt.Sprintf("token %s is over its %g requests per second", tok.Name, s.Tokens.Rate)})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, tok)))
	})
}

// require admits an authenticated request whose role includes need.
func require(need Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, _ := r.Context().Value(principalKey{}).(Token)
			if !tok.Role.may(need) {
				writeJSON(w, http.StatusForbidden, errorBody{Code: "forbidden",
					Message: fmt.Sprintf("token %s has role %s; this needs %s", tok.Name, tok.Role, need)})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Allows reports whether token is accepted with a role that includes need,
// and names its holder: for other front ends (the dashboard) that take a
// token otherwise than in the Authorization header.
func (t *Tokens) Allows(token string, need Role) (string, bool) {
	tok, ok := t.find(strings.TrimSpace(token))
	if !ok || !tok.Role.may(need) {
		return "", false
	}
	return tok.Name, true
}
