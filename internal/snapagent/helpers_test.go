package snapagent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

const testToken = "test-token-0123456789abcdef"

// sentinel is the content of the files outside the root: a response that
// holds it, or its digest, has read what it must not.
const sentinel = "OUTSIDE-THE-ROOT-SENTINEL"

// env is one agent under test, serving a fresh root.
type env struct {
	base  string // the temporary directory holding root and its siblings
	root  string // the agent's root
	agent *Agent
	srv   *httptest.Server

	mu     sync.Mutex
	opened []string // every path the agent opened for reading
}

// setup starts an agent on a new temporary root, with base/root2 (a
// sibling sharing the root's name as a prefix) and base/outside holding
// sentinel files. configure may adjust the configuration.
func setup(t *testing.T, configure ...func(*Config)) *env {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{base: base, root: filepath.Join(base, "root")}
	for _, dir := range []string{e.root, filepath.Join(base, "root2"), filepath.Join(base, "outside")} {
		mkdir(t, dir)
	}
	write(t, filepath.Join(base, "root2", "secret.txt"), sentinel)
	write(t, filepath.Join(base, "outside", "secret.txt"), sentinel)
	cfg := Config{Roots: []string{e.root}, Token: testToken, Hostname: "test-host", SampleInterval: time.Second}
	for _, c := range configure {
		c(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.onOpen = func(p string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.opened = append(e.opened, p)
	}
	a.cpuWindow = 20 * time.Millisecond
	e.agent = a
	e.srv = httptest.NewServer(a.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// client never follows redirects, so every answer is seen as sent.
var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

// do sends a request with the test token (unless token is set in headers).
func (e *env) do(t *testing.T, method, target string, body []byte, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, err: rerr}
}

// capture asks for a capture of path and decodes it, failing the test on
// anything but a whole capture.
func (e *env) capture(t *testing.T, path string) (agentapi.Capture, []byte) {
	t.Helper()
	resp := e.do(t, http.MethodPost, "/v1/capture", captureBody(path))
	if resp.status != http.StatusOK || resp.err != nil {
		t.Fatalf("capture %s: status %d, read error %v: %s", path, resp.status, resp.err, resp.body)
	}
	return decodeCapture(t, resp.body), resp.body
}

func captureBody(path string) []byte {
	b, _ := json.Marshal(agentapi.CaptureRequest{Path: path})
	return b
}

// decodeCapture decodes a capture strictly: every field known, one value.
func decodeCapture(t *testing.T, body []byte) agentapi.Capture {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var c agentapi.Capture
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decoding capture: %v\n%s", err, body)
	}
	if dec.More() {
		t.Fatalf("data after the capture")
	}
	return c
}

func decodeError(t *testing.T, body []byte) agentapi.Error {
	t.Helper()
	var e agentapi.Error
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not an agentapi.Error (%v): %s", err, body)
	}
	return e
}

// openedOutside returns the paths the agent opened outside its root.
func (e *env) openedOutside() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, p := range e.opened {
		if !within(p, e.root) {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) wasOpened(path string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.opened {
		if p == path {
			return true
		}
	}
	return false
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// digestOf hashes a file independently of the agent.
func digestOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func containsSentinel(body []byte) bool {
	sum := sha256.Sum256([]byte(sentinel))
	return bytes.Contains(body, []byte(sentinel)) || bytes.Contains(body, []byte(hex.EncodeToString(sum[:])))
}

func filesByPath(c agentapi.Capture) map[string]agentapi.File {
	m := map[string]agentapi.File{}
	for _, f := range c.Files {
		m[f.Path] = f
	}
	return m
}

func trimRoot(p, root string) string { return strings.TrimPrefix(p, root) }

func digestOfString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newStrictDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec
}

func newScanner(s string) *bufio.Scanner { return bufio.NewScanner(strings.NewReader(s)) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
