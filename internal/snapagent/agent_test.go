package snapagent

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
)

func TestToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var compared atomic.Int64
	e.agent.compare = func(x, y []byte) int {
		compared.Add(1)
		return subtle.ConstantTimeCompare(x, y)
	}
	write(t, e.root+"/f", "x")
	tests := []struct {
		name          string
		authorization string
		status        int
		compares      bool
	}{
		{"missing", "", 401, false},
		{"not bearer", "Basic dXNlcjpwYXNz", 401, false},
		{"bearer without token", "Bearer ", 401, false},
		{"wrong", "Bearer wrong-token-0123456789abcdef", 401, true},
		{"shorter", "Bearer " + testToken[:len(testToken)-1], 401, true},
		{"longer", "Bearer " + testToken + "x", 401, true},
		{"prefix of the token", "Bearer test", 401, true},
		{"right", "Bearer " + testToken, 200, true},
		{"scheme in any case", "bearer " + testToken, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := compared.Load()
			resp := e.do(t, http.MethodPost, "/v1/capture", captureBody(e.root), "Authorization", tt.authorization)
			if resp.status != tt.status {
				t.Errorf("status = %d, want %d: %s", resp.status, tt.status, resp.body)
			}
			if tt.status == 401 {
				decodeError(t, resp.body)
				if !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", resp.header.Get("WWW-Authenticate"))
				}
			}
			if got := compared.Load() > before; got != tt.compares {
				t.Errorf("constant-time comparison used = %v, want %v", got, tt.compares)
			}
		})
	}
	// Every endpoint but /healthz needs the token.
	for _, target := range []string{"/v1/recommend?path=" + e.root, "/v1/blobs/" + digestOfString("x"), "/v1/nothing", "/"} {
		if resp := e.do(t, http.MethodGet, target, nil, "Authorization", ""); resp.status != 401 {
			t.Errorf("GET %s without a token: status %d", target, resp.status)
		}
	}
	resp := e.do(t, http.MethodGet, "/healthz", nil, "Authorization", "")
	if resp.status != 200 || !strings.Contains(string(resp.body), "ok") {
		t.Errorf("healthz: %d %s", resp.status, resp.body)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := dir + "/file"
	write(t, file, "x")
	symlink(t, dir, dir+"/link")
	tests := []struct {
		name  string
		cfg   Config
		where string // the field the error names; "" for no error
	}{
		{"valid", Config{Roots: []string{dir}, Token: testToken}, ""},
		{"root through a symlink", Config{Roots: []string{dir + "/link"}, Token: testToken}, ""},
		{"no roots", Config{Token: testToken}, "Roots"},
		{"relative root", Config{Roots: []string{"var/app"}, Token: testToken}, "Roots[0]"},
		{"missing root", Config{Roots: []string{dir, dir + "/missing"}, Token: testToken}, "Roots[1]"},
		{"file as root", Config{Roots: []string{file}, Token: testToken}, "Roots[0]"},
		{"proc as root", Config{Roots: []string{"/proc"}, Token: testToken}, "Roots[0]"},
		{"dev as root", Config{Roots: []string{"/dev/shm"}, Token: testToken}, "Roots[0]"},
		{"NUL in root", Config{Roots: []string{dir + "\x00"}, Token: testToken}, "Roots[0]"},
		{"no token", Config{Roots: []string{dir}}, "Token"},
		{"short token", Config{Roots: []string{dir}, Token: "short"}, "Token"},
		{"token with a space", Config{Roots: []string{dir}, Token: "0123456789 abcdef"}, "Token"},
		{"service without name", Config{Roots: []string{dir}, Token: testToken, Services: []ServiceMatch{{ExeGlob: "x"}}}, "Services[0].Name"},
		{"service matching everything", Config{Roots: []string{dir}, Token: testToken, Services: []ServiceMatch{{Name: "x"}}}, "Services[0]"},
		{"bad glob", Config{Roots: []string{dir}, Token: testToken, Services: []ServiceMatch{{Name: "x", ExeGlob: "[x"}}}, "Services[0].ExeGlob"},
		{"tiny interval", Config{Roots: []string{dir}, Token: testToken, SampleInterval: time.Millisecond}, "SampleInterval"},
		{"negative history", Config{Roots: []string{dir}, Token: testToken, HistorySamples: -1}, "HistorySamples"},
		{"negative max files", Config{Roots: []string{dir}, Token: testToken, MaxFiles: -1}, "MaxFiles"},
		{"relative proc root", Config{Roots: []string{dir}, Token: testToken, ProcRoot: "proc"}, "ProcRoot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(tt.cfg)
			if tt.where == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if a.cfg.SampleInterval != DefaultSampleInterval || a.cfg.HistorySamples != DefaultHistorySamples || a.cfg.MaxFiles != DefaultMaxFiles {
					t.Errorf("defaults not applied: %+v", a.cfg)
				}
				if a.roots[0].real != dir {
					t.Errorf("root resolves to %s, want %s", a.roots[0].real, dir)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EINVALID {
				t.Fatalf("New error = %v, want EINVALID", err)
			}
			found := false
			for _, p := range de.Problems {
				found = found || p.Where == tt.where
			}
			if !found {
				t.Errorf("error does not name %s:\n%v", tt.where, err)
			}
		})
	}
}

// TestRunSamplesUsage runs the sampler against real processes: their
// service gets a usage history, returned with the capture, and the
// recommendation is computed from it.
//
// It runs alone (not in parallel) so that the busy process gets its CPU.
func TestRunSamplesUsage(t *testing.T) {
	e := setup(t, func(c *Config) {
		c.SampleInterval = 100 * time.Millisecond
		c.HistorySamples = 4
	})
	e.agent.cpuWindow = 300 * time.Millisecond
	app := e.root + "/busy"
	mkdir(t, app)
	// A shell that spins keeps some CPU busy.
	busy := startChild(t, app, nil, "/bin/sh", "-c", "while :; do :; done")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.agent.Run(ctx) }()
	// Wait for a full history: four samples after the first reading.
	for deadline := time.Now().Add(15 * time.Second); len(e.agent.history.samples("sh")) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("the sampler recorded %d samples", len(e.agent.history.samples("sh")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	c, _ := e.capture(t, app)
	if len(c.Usage) != 1 || c.Usage[0].Service != "sh" {
		t.Fatalf("usage = %+v", c.Usage)
	}
	series := c.Usage[0]
	if len(series.Samples) != 4 || series.IntervalSeconds != 0.1 {
		t.Errorf("%d samples at %gs, want the last 4 at 0.1s", len(series.Samples), series.IntervalSeconds)
	}
	var busiest int64
	for i, s := range series.Samples {
		busiest = max(busiest, s.CPUMillicores)
		if s.MemoryBytes <= 0 {
			t.Errorf("sample %d = %+v, want the process's memory", i, s)
		}
		if i > 0 && !s.At.After(series.Samples[i-1].At) {
			t.Errorf("samples out of order")
		}
	}
	if busiest < 100 { // most of a core on an idle host; less on a busy one
		t.Errorf("samples %+v: a spinning process should use most of a core", series.Samples)
	}
	rec := c.Recommendations[0]
	if rec.Samples != 4 || rec.DesiredCPUMillicores < 50 || !strings.Contains(rec.Basis, "4 samples") {
		t.Errorf("recommendation = %+v", rec)
	}
	var p *int
	for _, proc := range c.Processes {
		if proc.PID == busy.Process.Pid {
			p = &proc.PID
			if proc.CPUMillicores < 50 {
				t.Errorf("busy process uses %dm CPU, want most of a core", proc.CPUMillicores)
			}
		}
	}
	if p == nil {
		t.Errorf("busy process not captured")
	}

	// /v1/recommend answers the same, for the services under the path.
	resp := e.do(t, http.MethodGet, "/v1/recommend?path="+app, nil)
	if resp.status != 200 || !strings.Contains(string(resp.body), `"service":"sh"`) {
		t.Errorf("recommend: %d %s", resp.status, resp.body)
	}
	if resp := e.do(t, http.MethodGet, "/v1/recommend?path="+e.root+"/missing", nil); resp.status != 404 {
		t.Errorf("recommend for a missing path: %d", resp.status)
	}
}
