package live_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/hosts"
	"github.com/snapcompose/snapcompose/internal/live"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

const (
	testHost  = "production_server_1"
	testPath  = "/var/app"
	testToken = "tok-3f9a7c1e"
	secret    = "s3cr3t-orders-token"
)

var capturedAt = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func ptr(s string) *string { return &s }

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// sampleCapture is what an agent might see under /var/app: an api of two
// processes and a worker, with the noise a real process environment has.
func sampleCapture() agentapi.Capture {
	return agentapi.Capture{
		Host: "prod-1", Path: testPath, Root: "/", CapturedAt: capturedAt,
		Files: []agentapi.File{
			{Path: "/var/app/logs/app.log", Size: 600, Mode: 0o640, Digest: digest("log"), ModTime: capturedAt},
			{Path: "/var/app/config/app.yaml", Size: 300, Mode: 0o644, Digest: digest("conf"), ModTime: capturedAt},
			{Path: "/var/app/bin/api", Size: 101, Mode: 0o755, Digest: digest("bin"), ModTime: capturedAt},
		},
		Ports: []agentapi.Port{
			{Protocol: "tcp", Address: "0.0.0.0", Port: 9090, PID: 201, Service: "api"},
			{Protocol: "tcp", Address: "::", Port: 9090, PID: 201, Service: "api"},
			{Protocol: "tcp", Address: "127.0.0.1", Port: 8081, PID: 200, Service: "api"},
			{Protocol: "udp", Address: "0.0.0.0", Port: 8125, PID: 150, Service: "worker"},
			{Protocol: "tcp", Address: "0.0.0.0", Port: 7000, PID: 99, Service: "ghost"},
		},
		Processes: []agentapi.Process{
			// Listed out of order: conversion sorts by service, then pid.
			{PID: 201, Service: "api", Name: "api", Exe: "/var/app/bin/api", Cwd: "/var/app", Cmdline: []string{"/var/app/bin/api", "--worker"},
				CPUMillicores: 120, MemoryBytes: 64 << 20, Env: []agentapi.EnvVar{
					{Name: "LOG_LEVEL", Value: ptr("debug")}, {Name: "EXTRA", Value: ptr("from-201")},
				}},
			{PID: 150, Service: "worker", Name: "worker", Exe: "/var/app/bin/worker", Cmdline: []string{"/var/app/bin/worker"},
				CPUMillicores: 250, MemoryBytes: 100 << 20, Env: []agentapi.EnvVar{
					{Name: "QUEUE", Value: ptr("orders")},
					{Name: "DB_PASSWORD", Value: ptr(secret)}, // an agent that failed to redact
					{Name: "LOG_LEVEL", Value: ptr("error")},
				}},
			{PID: 200, Service: "api", Name: "api", Exe: "/var/app/bin/api", Cwd: "/var/app", Cmdline: []string{"/var/app/bin/api"},
				CPUMillicores: 80, MemoryBytes: 32 << 20, Env: []agentapi.EnvVar{
					{Name: "PATH", Value: ptr("/usr/bin:/bin")}, {Name: "HOME", Value: ptr("/root")}, {Name: "PWD", Value: ptr("/var/app")},
					{Name: "SHLVL", Value: ptr("1")}, {Name: "_", Value: ptr("/var/app/bin/api")}, {Name: "LC_ALL", Value: ptr("C")},
					{Name: "LOG_LEVEL", Value: ptr("warn")},
					{Name: "ORDERS_API_TOKEN", Digest: digest(secret)},
					{Name: "EMPTY"},
					{Name: "BASH_FUNC_x%%", Value: ptr("() { :; }")},
				}},
		},
		Recommendations: []agentapi.Recommendation{
			{Service: "api", MinCPUMillicores: 150, DesiredCPUMillicores: 400, MinMemoryBytes: 96 << 20, DesiredMemoryBytes: 256 << 20, Samples: 60, Basis: "p90 + 15%"},
		},
		Stats: agentapi.CaptureStats{Files: 3, Bytes: 1001},
	}
}

// agentServer is a fake snapagent: it counts requests and hands them to handle.
type agentServer struct {
	*httptest.Server
	requests atomic.Int32
}

// captureHandler serves c to requests with the test token, checking what
// the live source sends.
func captureHandler(t *testing.T, c agentapi.Capture) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/capture" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(agentapi.Error{Code: "unauthorized", Message: "bad token"})
			return
		}
		var req agentapi.CaptureRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Path != testPath {
			t.Errorf("capture request = %+v, %v; want path %s", req, err, testPath)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c)
	}
}

func newAgent(t *testing.T, h http.Handler) *agentServer {
	t.Helper()
	a := &agentServer{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

// setup writes a hosts file naming url for testHost, with extra lines in
// its entry, and returns the live source over it.
func setup(t *testing.T, url, extra string, opts ...live.Option) *live.Source {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "agent.token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("hosts:\n  %s:\n    url: %s\n    token_file: agent.token\n%s", testHost, url, extra)
	path := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := hosts.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return live.New(f, opts...)
}

func liveSource() domain.Source {
	return domain.Source{Type: domain.LiveSource, Host: testHost, Path: testPath, Priority: 2, Tags: []string{"data", "logging"}, Index: 1}
}

func TestRetrieveConvertsTheCapture(t *testing.T) {
	t.Parallel()
	a := newAgent(t, captureHandler(t, sampleCapture()))
	snap, err := setup(t, a.URL, "").Retrieve(context.Background(), liveSource())
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if snap.Source.Ref() != "live:production_server_1:/var/app" {
		t.Errorf("source = %s", snap.Source.Ref())
	}
	if want := "live capture of /var/app on production_server_1 at 2025-03-14T09:26:53Z"; snap.Description != want {
		t.Errorf("description = %q, want %q", snap.Description, want)
	}
	if !slices.Equal(snap.Tags, []string{"data", "logging"}) {
		t.Errorf("tags = %v", snap.Tags)
	}

	// Services: one per distinct service, sorted; resources from the
	// recommendation's desired amounts, or current use without one; disk
	// split evenly.
	if len(snap.Services) != 2 {
		t.Fatalf("services = %+v, want api and worker", snap.Services)
	}
	api, worker := snap.Services[0], snap.Services[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"api.name", api.Name, "api"},
		{"api.image", api.Image, "exe:/var/app/bin/api"},
		{"api.ports", api.Ports, []domain.Port{{Host: 8081, Container: 8081, Protocol: "tcp"}, {Host: 9090, Container: 9090, Protocol: "tcp"}}},
		{"api.requested", api.Requested, domain.Resources{CPUMillicores: 400, MemoryBytes: 256 << 20, DiskBytes: 501}},
		// Firm until the provider concedes (see TestConcede).
		{"api.minimum", api.Minimum, domain.Resources{CPUMillicores: 400, MemoryBytes: 256 << 20, DiskBytes: 501}},
		{"api.depends_on", api.DependsOn, []string{}},
		// What each service reads: its processes' variables, noise left out.
		{"api.reads", api.Reads, []string{"env:EMPTY", "env:EXTRA", "env:LOG_LEVEL", "env:ORDERS_API_TOKEN"}},
		{"worker.reads", worker.Reads, []string{"env:DB_PASSWORD", "env:LOG_LEVEL", "env:QUEUE"}},
		{"worker.name", worker.Name, "worker"},
		{"worker.image", worker.Image, "exe:/var/app/bin/worker"},
		{"worker.ports", worker.Ports, []domain.Port{{Host: 8125, Container: 8125, Protocol: "udp"}}},
		{"worker.requested", worker.Requested, domain.Resources{CPUMillicores: 250, MemoryBytes: 100 << 20, DiskBytes: 500}},
		{"worker.minimum", worker.Minimum, domain.Resources{CPUMillicores: 250, MemoryBytes: 100 << 20, DiskBytes: 500}},
		{"volumes", snap.Volumes, []domain.Volume{}},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, s := range snap.Services {
		if !strings.HasPrefix(s.Runtime, "sha256:") || !strings.HasPrefix(s.Digest, "sha256:") || s.Runtime == s.Digest {
			t.Errorf("%s: runtime %q, digest %q; want two distinct digests", s.Name, s.Runtime, s.Digest)
		}
	}
	if api.Runtime == worker.Runtime {
		t.Errorf("api and worker have one runtime digest")
	}

	// Env: environment-wide, first process in (service, pid) order wins,
	// noise dropped, secrets as digests only.
	wantEnv := []domain.EnvVar{
		{Name: "DB_PASSWORD", Digest: digest(secret)},
		{Name: "EMPTY"},
		{Name: "EXTRA", Value: "from-201"},
		{Name: "LOG_LEVEL", Value: "warn"}, // api pid 200 comes first
		{Name: "ORDERS_API_TOKEN", Digest: digest(secret)},
		{Name: "QUEUE", Value: "orders"},
	}
	if !slices.Equal(snap.Env, wantEnv) {
		t.Errorf("env =\n%+v\nwant\n%+v", snap.Env, wantEnv)
	}

	wantFiles := []domain.File{
		{Path: "/var/app/bin/api", Digest: digest("bin"), Size: 101, Mode: 0o755},
		{Path: "/var/app/config/app.yaml", Digest: digest("conf"), Size: 300, Mode: 0o644},
		{Path: "/var/app/logs/app.log", Digest: digest("log"), Size: 600, Mode: 0o640},
	}
	if !slices.Equal(snap.Files, wantFiles) {
		t.Errorf("files =\n%+v\nwant\n%+v", snap.Files, wantFiles)
	}

	body, _ := json.Marshal(snap)
	if strings.Contains(string(body), secret) {
		t.Errorf("a secret value reached the snapshot: %s", body)
	}
	if a.requests.Load() != 1 {
		t.Errorf("requests = %d, want 1", a.requests.Load())
	}
}

// TestRuntimeIsStable: the same processes under other pids, in another
// order, with another number of identical workers, run the same thing.
func TestRuntimeIsStable(t *testing.T) {
	t.Parallel()
	c1 := sampleCapture()
	c2 := sampleCapture()
	slices.Reverse(c2.Processes)
	for i := range c2.Processes {
		c2.Processes[i].PID += 1000
	}
	extra := c2.Processes[0] // worker
	extra.PID = 5000
	c2.Processes = append(c2.Processes, extra)
	var snaps [2]*domain.Snapshot
	for i, c := range []agentapi.Capture{c1, c2} {
		a := newAgent(t, captureHandler(t, c))
		s, err := setup(t, a.URL, "").Retrieve(context.Background(), liveSource())
		if err != nil {
			t.Fatal(err)
		}
		snaps[i] = s
	}
	for i := range snaps[0].Services {
		if snaps[0].Services[i].Runtime != snaps[1].Services[i].Runtime {
			t.Errorf("%s: runtime changed with pids and order", snaps[0].Services[i].Name)
		}
	}
}

// TestRetrieveMapsRootFS: an agent that sees the host's file system under
// rootfs is asked for rootfs+path, and what it reports is mapped back.
func TestRetrieveMapsRootFS(t *testing.T) {
	t.Parallel()
	const rootfs = "/srv/hostfs"
	c := sampleCapture()
	c.Path = rootfs + c.Path
	for i := range c.Files {
		c.Files[i].Path = rootfs + c.Files[i].Path
	}
	for i := range c.Processes {
		p := &c.Processes[i]
		p.Exe, p.Cwd = rootfs+p.Exe, rootfs+p.Cwd
		p.Cmdline = append([]string{rootfs + p.Cmdline[0], "--data", rootfs + "/var/app/data", "--label=" + rootfs}, p.Cmdline[1:]...)
	}
	var asked string
	a := newAgent(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.CaptureRequest
		json.NewDecoder(r.Body).Decode(&req)
		asked = req.Path
		json.NewEncoder(w).Encode(c)
	}))
	snap, err := setup(t, a.URL, "    rootfs: "+rootfs+"\n").Retrieve(context.Background(), liveSource())
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if asked != "/srv/hostfs/var/app" {
		t.Errorf("the agent was asked for %q, want /srv/hostfs/var/app", asked)
	}
	if got := snap.Services[0].Image; got != "exe:/var/app/bin/api" {
		t.Errorf("image = %s, want exe:/var/app/bin/api", got)
	}
	for _, f := range snap.Files {
		if !strings.HasPrefix(f.Path, "/var/app/") {
			t.Errorf("file %s is not in the host's view", f.Path)
		}
	}
	// The runtime does not depend on where the agent found the file
	// system: arguments under rootfs are mapped too, others left alone.
	hostView := sampleCapture()
	for i := range hostView.Processes {
		p := &hostView.Processes[i]
		p.Cmdline = append([]string{p.Cmdline[0], "--data", "/var/app/data", "--label=" + rootfs}, p.Cmdline[1:]...)
	}
	plain := newAgent(t, captureHandler(t, hostView))
	want, err := setup(t, plain.URL, "").Retrieve(context.Background(), liveSource())
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Services {
		if snap.Services[i].Runtime != want.Services[i].Runtime {
			t.Errorf("%s: runtime differs under a rootfs", want.Services[i].Name)
		}
	}
}

func TestRetrieveFailures(t *testing.T) {
	t.Parallel()
	big := sampleCapture()
	for i := range 50 {
		big.Files = append(big.Files, agentapi.File{Path: fmt.Sprintf("/var/app/data/%03d.csv", i), Size: 1, Digest: digest("x")})
	}
	outside := sampleCapture()
	outside.Files = append(outside.Files, agentapi.File{Path: "/etc/shadow", Size: 1, Digest: digest("x")})
	badService := sampleCapture()
	badService.Processes[0].Service = "../api"

	status := func(code int, body any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			if s, ok := body.(string); ok {
				io.WriteString(w, s)
				return
			}
			json.NewEncoder(w).Encode(body)
		}
	}
	streamed := func(c agentapi.Capture) http.HandlerFunc {
		// Flushing first makes the response chunked, with no Content-Length
		// to refuse it by: the limit must hold while decoding.
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			json.NewEncoder(w).Encode(c)
		}
	}
	tests := []struct {
		name          string
		handler       http.HandlerFunc
		extra         string // hosts file lines
		opts          []live.Option
		wantTemporary bool
		wantErr       []string
	}{
		{"bad token", status(http.StatusUnauthorized, agentapi.Error{Code: "unauthorized", Message: "no"}), "", nil, false,
			[]string{"the agent at http://", "refused the token (HTTP 401)", "token_file"}},
		{"path outside the roots", status(http.StatusForbidden, agentapi.Error{Code: "invalid", Message: "/var/app is not under a root this agent serves"}), "", nil, false,
			[]string{"refused the path (HTTP 403): /var/app is not under a root this agent serves"}},
		{"refused path", status(http.StatusBadRequest, agentapi.Error{Code: "invalid", Message: "path /var/app is not under any root"}), "", nil, false,
			[]string{"refused the request (HTTP 400): path /var/app is not under any root"}},
		{"missing path", status(http.StatusNotFound, agentapi.Error{Code: "not_found", Message: "no such directory"}), "", nil, false,
			[]string{"(HTTP 404): no such directory"}},
		{"server error", status(http.StatusInternalServerError, agentapi.Error{Code: "internal", Message: "walk failed"}), "", nil, true,
			[]string{"failed (HTTP 500): walk failed"}},
		{"unavailable without a body", status(http.StatusServiceUnavailable, ""), "", nil, true,
			[]string{"failed (HTTP 503): Service Unavailable"}},
		{"busy", status(http.StatusTooManyRequests, agentapi.Error{Message: "one capture at a time"}), "", nil, true,
			[]string{"busy (HTTP 429)"}},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
		}, "", nil, false,
			[]string{"redirected"}},
		{"garbage", status(http.StatusOK, "<html>502 Bad Gateway</html>"), "", nil, false,
			[]string{"cannot be decoded"}},
		{"trailing garbage", func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(sampleCapture())
			io.WriteString(w, "{} trailing")
		}, "", nil, false, []string{"cannot be decoded", "unexpected data after the capture"}},
		{"wrong shape", status(http.StatusOK, `{"files": "many"}`), "", nil, false, []string{"cannot be decoded"}},
		{"truncated", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(sampleCapture())
			w.Write(b[:len(b)/2])
		}, "", nil, true, []string{"stopped sending the capture"}},
		{"over the size limit", captureHandler(t, big), "", []live.Option{live.WithMaxCaptureBytes(2000)}, false,
			[]string{`capture of /var/app on host "production_server_1" is larger than the limit of`}},
		{"over the size limit, streamed", streamed(big), "", []live.Option{live.WithMaxCaptureBytes(2000)}, false,
			[]string{`capture of /var/app on host "production_server_1" is larger than the limit of`}},
		{"over the file limit", captureHandler(t, big), "", []live.Option{live.WithMaxFiles(10)}, false,
			[]string{"is larger than the limit of 10 files (it lists 53)"}},
		{"file outside the path", captureHandler(t, outside), "", nil, false,
			[]string{"cannot use", `"/etc/shadow" is outside the captured path /var/app`}},
		{"bad service name", captureHandler(t, badService), "", nil, false,
			[]string{"cannot use", "processes[0].service"}},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // so the server notices the client leave
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "    timeout: 100ms\n", nil, true, []string{"did not answer within"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAgent(t, tt.handler)
			src := setup(t, a.URL, tt.extra, tt.opts...)
			start := time.Now()
			snap, err := src.Retrieve(context.Background(), liveSource())
			if snap != nil {
				t.Errorf("a snapshot came back with the error")
			}
			checkUnavailable(t, err, tt.wantTemporary, tt.wantErr...)
			if tt.name == "slow" && time.Since(start) > 3*time.Second {
				t.Errorf("the per-request timeout did not cut the request off (%s)", time.Since(start))
			}
			if n := a.requests.Load(); n != 1 {
				t.Errorf("requests = %d, want 1: the source itself never retries", n)
			}
		})
	}
}

func TestRetrieveUnreachable(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close() // nothing listens there any more
	_, err := setup(t, url, "").Retrieve(context.Background(), liveSource())
	checkUnavailable(t, err, true, "refused the connection", url)
}

func TestRetrieveConfigurationErrors(t *testing.T) {
	t.Parallel()
	a := newAgent(t, captureHandler(t, sampleCapture()))
	src := setup(t, a.URL, "")

	unknown := liveSource()
	unknown.Host = "staging_9"
	_, err := src.Retrieve(context.Background(), unknown)
	if domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("unknown host: code = %q (%v), want %s", domain.ErrorCode(err), err, domain.ENOTFOUND)
	}
	for _, frag := range []string{`host "staging_9"`, "hosts.yaml", "have: production_server_1"} {
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("unknown host: error does not mention %q: %v", frag, err)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("hosts:\n  %s: {url: %q, token_env: NO_SUCH_TOKEN}\n", testHost, a.URL)), 0o600)
	f, err := hosts.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = live.New(f, live.WithGetenv(func(string) string { return "" })).Retrieve(context.Background(), liveSource())
	if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), "hosts.production_server_1.token_env") {
		t.Errorf("unset token: err = %v, want EINVALID naming the field", err)
	}
	if n := a.requests.Load(); n != 0 {
		t.Errorf("requests = %d, want none without a token", n)
	}
}

func TestRetrieveOverTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(captureHandler(t, sampleCapture()))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("with its CA", func(t *testing.T) {
		t.Parallel()
		snap, err := setup(t, srv.URL, "    ca_file: "+filepath.Join(dir, "ca.pem")+"\n").Retrieve(context.Background(), liveSource())
		if err != nil || len(snap.Services) != 2 {
			t.Fatalf("Retrieve = %v, %v", snap, err)
		}
	})
	t.Run("without it", func(t *testing.T) {
		t.Parallel()
		_, err := setup(t, srv.URL, "").Retrieve(context.Background(), liveSource())
		checkUnavailable(t, err, false, "certificate that cannot be verified", "ca_file")
	})
	t.Run("http to a TLS agent", func(t *testing.T) {
		t.Parallel()
		_, err := setup(t, strings.Replace(srv.URL, "https://", "http://", 1), "").Retrieve(context.Background(), liveSource())
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			t.Errorf("err = %v, want EUNAVAILABLE", err)
		}
	})
}

// TestRetryPolicy runs the live source under the orchestrator: failures
// that may pass are retried up to the limit, refusals never.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	failing := func(code, times int) http.HandlerFunc {
		var n atomic.Int32
		ok := captureHandler(t, sampleCapture())
		return func(w http.ResponseWriter, r *http.Request) {
			if int(n.Add(1)) <= times {
				w.WriteHeader(code)
				json.NewEncoder(w).Encode(agentapi.Error{Code: "x", Message: "no"})
				return
			}
			ok(w, r)
		}
	}
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		opts         []live.Option
		wantRequests int32
		wantOK       bool
	}{
		{"5xx retried until it passes", failing(http.StatusServiceUnavailable, 2), nil, 3, true},
		{"5xx retried up to the limit", failing(http.StatusBadGateway, 100), nil, 3, false},
		{"400 not retried", failing(http.StatusBadRequest, 100), nil, 1, false},
		{"401 not retried", failing(http.StatusUnauthorized, 100), nil, 1, false},
		{"oversized not retried", captureHandler(t, sampleCapture()), []live.Option{live.WithMaxCaptureBytes(100)}, 1, false},
		{"garbage not retried", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "nope") }, nil, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAgent(t, tt.handler)
			r, _ := agent.New(domain.FirstWin)
			o := orchestrator.New().
				WithSource(domain.LiveSource, setup(t, a.URL, "", tt.opts...)).
				WithResolver(r).
				WithRetrieval(10*time.Second, 3, time.Millisecond)
			m := &domain.Manifest{Name: "live", ConflictResolution: domain.FirstWin, Sources: []domain.Source{liveSource()},
				ResourceLimits: domain.Resources{CPUMillicores: 8000, MemoryBytes: 32e9, DiskBytes: 500e9}}
			m.Sources[0].Index = 0
			p, err := o.Plan(context.Background(), m)
			if got := a.requests.Load(); got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
			if tt.wantOK {
				if err != nil || len(p.Services) != 2 {
					t.Fatalf("Plan = %v, %v", p, err)
				}
				return
			}
			if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "live:production_server_1:/var/app") {
				t.Errorf("err = %v, want EUNAVAILABLE naming the source", err)
			}
		})
	}
}

func TestBlob(t *testing.T) {
	t.Parallel()
	const content = "order_id,total\n1,9.99\n"
	good := digest(content)
	a := newAgent(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, "/v1/blobs/") {
		case good:
			io.WriteString(w, content)
		case digest("tampered"):
			io.WriteString(w, "something else")
		case digest("slow"):
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(agentapi.Error{Code: "not_found", Message: "no blob with that digest"})
		}
	}))
	src := setup(t, a.URL, "    timeout: 5s\n")
	ctx := context.Background()

	rc, err := src.Blob(ctx, testHost, good)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(body) != content {
		t.Errorf("blob = %q, %v; want %q", body, err, content)
	}

	rc, err = src.Blob(ctx, testHost, digest("tampered"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	checkUnavailable(t, err, false, "the blob the agent sent has digest")

	_, err = src.Blob(ctx, testHost, digest("missing"))
	checkUnavailable(t, err, false, "no blob with that digest", `host "production_server_1"`)

	start := time.Now()
	_, err = setup(t, a.URL, "    timeout: 100ms\n").Blob(ctx, testHost, digest("slow"))
	checkUnavailable(t, err, true, "did not answer within 100ms")
	if time.Since(start) > 3*time.Second {
		t.Errorf("the blob request was not cut off by the host's timeout")
	}

	if _, err := src.Blob(ctx, testHost, "sha256:../../etc/passwd"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("malformed digest: err = %v, want EINVALID", err)
	}
	if _, err := src.Blob(ctx, "nowhere", good); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("unknown host: err = %v, want ENOTFOUND", err)
	}
}

// checkUnavailable checks err is an EUNAVAILABLE *live.Error naming the host
// (and the path, for captures), marked temporary or not, never quoting the
// token, and mentioning every fragment.
func checkUnavailable(t *testing.T, err error, temporary bool, fragments ...string) {
	t.Helper()
	if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
		t.Fatalf("code = %q (%v), want %s", code, err, domain.EUNAVAILABLE)
	}
	var le *live.Error
	if !errors.As(err, &le) {
		t.Fatalf("%v is not a *live.Error", err)
	}
	if le.Temporary() != temporary {
		t.Errorf("Temporary() = %v, want %v (%v)", le.Temporary(), temporary, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, testHost) {
		t.Errorf("error does not name the host: %s", msg)
	}
	if le.Path != "" && !strings.Contains(msg, le.Path) {
		t.Errorf("error does not name the path: %s", msg)
	}
	if strings.Contains(msg, testToken) {
		t.Errorf("error quotes the token: %s", msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error does not mention %q: %s", f, msg)
		}
	}
}

// TestRetrieveRelaysTheAgentsReasonForAnUnfinishedCapture: snapagent streams
// the capture as it walks and, when the walk fails half way, ends the body
// early with its reason in the Snapagent-Error trailer.
func TestRetrieveRelaysTheAgentsReasonForAnUnfinishedCapture(t *testing.T) {
	t.Parallel()
	a := newAgent(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Snapagent-Error")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"host":"h","path":"/var/app","files":[{"path":"/var/app/a","size":1}`)
		w.Header().Set("Snapagent-Error", "more than 1000000 files under /var/app")
	}))
	_, err := setup(t, a.URL, "").Retrieve(context.Background(), liveSource())
	checkUnavailable(t, err, false, "gave up on the capture: more than 1000000 files under /var/app")
	if got := a.requests.Load(); got != 1 {
		t.Errorf("agent asked %d times, want 1: the agent's own refusal is not retried", got)
	}
}
