package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

const testToken = "cmd-test-token-0123456789"

// syncBuffer is a bytes.Buffer safe for the agent's logger and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// agentRun is a snapagent running in-process on 127.0.0.1:0.
type agentRun struct {
	addr   string
	stderr *syncBuffer
	stop   context.CancelFunc
	code   chan int
}

// start runs the program with args until the test ends, and waits until
// it listens.
func start(t *testing.T, env map[string]string, args ...string) *agentRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &agentRun{stderr: &syncBuffer{}, stop: cancel, code: make(chan int, 1)}
	listening := make(chan string, 1)
	m := &Main{
		Stdout:   io.Discard,
		Stderr:   r.stderr,
		Getenv:   func(k string) string { return env[k] },
		OnListen: func(addr string) { listening <- addr },
	}
	go func() { r.code <- m.Run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...)) }()
	select {
	case r.addr = <-listening:
	case code := <-r.code:
		t.Fatalf("snapagent exited with %d before listening:\n%s", code, r.stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("snapagent did not start listening")
	}
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

// shutdown stops the agent as a signal would and returns its exit code.
func (r *agentRun) shutdown(t *testing.T) int {
	t.Helper()
	r.stop()
	select {
	case code := <-r.code:
		r.code <- code
		return code
	case <-time.After(15 * time.Second):
		t.Fatal("snapagent did not stop")
		return -1
	}
}

// run runs the program to completion, as for a flag error.
func run(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stderr syncBuffer
	m := &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Run(ctx, args), stderr.String()
}

func TestServeCaptureAndShutdown(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "app.conf"), []byte("port=80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, nil, "--root", root, "--token-file", tokenFile, "--sample-interval", "200ms", "--history", "10", "--hostname", "web-1")
	base := "http://" + r.addr

	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	body, _ := json.Marshal(agentapi.CaptureRequest{Path: root})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/capture", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var c agentapi.Capture
	err = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("capture: status %d, %v", resp.StatusCode, err)
	}
	if c.Host != "web-1" || len(c.Files) != 1 || c.Files[0].Path != filepath.Join(root, "app.conf") {
		t.Errorf("capture = %+v", c)
	}

	req, _ = http.NewRequest(http.MethodPost, base+"/v1/capture", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer wrong-token-000000000000")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d", resp.StatusCode)
	}

	if code := r.shutdown(t); code != exitOK {
		t.Errorf("exit code = %d, want 0", code)
	}
	logs := r.stderr.String()
	if strings.Contains(logs, testToken) {
		t.Errorf("the token appears in the logs")
	}
	for _, want := range []string{`"msg":"serving"`, `"msg":"captured"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	for line := range strings.Lines(logs) {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON log line: %s", line)
		}
	}
}

func TestServeTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	r := start(t, map[string]string{tokenEnv: testToken}, "--root", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + r.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("healthz over TLS: %d", resp.StatusCode)
	}
}

func TestFlagErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	withToken := map[string]string{tokenEnv: testToken}
	certFile, _, _ := selfSigned(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string // in stderr
	}{
		{"help", nil, []string{"-h"}, exitOK, "Usage"},
		{"no root", withToken, nil, exitInvalid, "--root"},
		{"missing root", withToken, []string{"--root", root, "--root", root + "/missing"}, exitInvalid, "--root #2"},
		{"relative root", withToken, []string{"--root", "var/app"}, exitInvalid, "not an absolute path"},
		{"no token", nil, []string{"--root", root}, exitInvalid, tokenEnv},
		{"short token", map[string]string{tokenEnv: "short"}, []string{"--root", root}, exitInvalid, "--token-file"},
		{"missing token file", nil, []string{"--root", root, "--token-file", root + "/none"}, exitInvalid, "--token-file"},
		{"unknown flag", withToken, []string{"--root", root, "--frobnicate"}, exitInvalid, "frobnicate"},
		{"argument", withToken, []string{"--root", root, "extra"}, exitInvalid, "unexpected argument"},
		{"bad service", withToken, []string{"--root", root, "--service", "nameonly"}, exitInvalid, "NAME=GLOB"},
		{"bad service glob", withToken, []string{"--root", root, "--service", "db=[x"}, exitInvalid, "--service #1"},
		{"bad interval", withToken, []string{"--root", root, "--sample-interval", "1ms"}, exitInvalid, "--sample-interval"},
		{"bad listen", withToken, []string{"--root", root, "--listen", "256.0.0.1:0"}, exitInvalid, "--listen"},
		{"cert without key", withToken, []string{"--root", root, "--tls-cert", certFile}, exitInvalid, "--tls-key"},
		{"bad key pair", withToken, []string{"--root", root, "--tls-cert", certFile, "--tls-key", certFile}, exitInvalid, "--tls-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stderr := run(t, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not mention %q:\n%s", tt.want, stderr)
			}
			if strings.Contains(stderr, testToken) {
				t.Errorf("the token appears on stderr")
			}
		})
	}
}

func TestParseService(t *testing.T) {
	t.Parallel()
	m, err := parseService("db=/usr/lib/postgresql/*/bin/postgres")
	if err != nil || m.Name != "db" || m.ExeGlob != "/usr/lib/postgresql/*/bin/postgres" {
		t.Errorf("glob: %+v %v", m, err)
	}
	m, err = parseService("worker=cmdline:celery worker=x")
	if err != nil || m.Name != "worker" || m.CmdlineContains != "celery worker=x" || m.ExeGlob != "" {
		t.Errorf("cmdline: %+v %v", m, err)
	}
	for _, bad := range []string{"", "=x", "x=", "x"} {
		if _, err := parseService(bad); err == nil {
			t.Errorf("parseService(%q) accepted", bad)
		}
	}
}

// TestStaticBinary builds the agent as it ships, without cgo, and checks
// that it is static and depends on nothing outside the standard library
// but its own three packages.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go tool")
		}
	}
	bin := filepath.Join(t.TempDir(), "snapagent")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/snapagent: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has a dynamic loader: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v", libs)
	}

	list := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var got []string
	for line := range strings.Lines(string(out)) {
		if line = strings.TrimSpace(line); line != "" {
			got = append(got, line)
		}
	}
	slices.Sort(got)
	const module = "github.com/snapcompose/snapcompose/"
	want := []string{module + "cmd/snapagent", module + "internal/agentapi", module + "internal/domain", module + "internal/snapagent"}
	if !slices.Equal(got, want) {
		t.Errorf("non-standard dependencies:\n got %q\nwant %q", got, want)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "snapagent test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
