package hosts_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/hosts"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	body := `# agents of the staging fleet
hosts:
  production_server_1:
    url: http://127.0.0.1:7071
    token_file: secrets/agent.token
    timeout: 30s
    rootfs: ../live
  db-2.example.com:
    url: https://db-2.example.com:7071/agent/
    token_env: SNAPAGENT_TOKEN
    ca_file: /etc/snapcompose/agent-ca.pem
`
	f, err := hosts.Parse("conf/hosts.yaml", []byte(body))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := strings.Join(f.Names(), ","), "db-2.example.com,production_server_1"; got != want {
		t.Errorf("Names() = %s, want %s", got, want)
	}
	p1, ok := f.Lookup("production_server_1")
	if !ok {
		t.Fatal("production_server_1 not found")
	}
	if got, want := p1.URL.String(), "http://127.0.0.1:7071"; got != want {
		t.Errorf("url = %s, want %s", got, want)
	}
	if got, want := p1.TokenFile, filepath.Join("conf", "secrets", "agent.token"); got != want {
		t.Errorf("token_file = %s, want %s (relative to the hosts file)", got, want)
	}
	if p1.Timeout != 30*time.Second {
		t.Errorf("timeout = %s, want 30s", p1.Timeout)
	}
	if got, want := p1.RootFS, mustAbs(t, "live"); got != want {
		t.Errorf("rootfs = %s, want %s (relative to the hosts file)", got, want)
	}
	if got, want := p1.Endpoint("/v1/capture").String(), "http://127.0.0.1:7071/v1/capture"; got != want {
		t.Errorf("endpoint = %s, want %s", got, want)
	}
	db, _ := f.Lookup("db-2.example.com")
	if db.TokenEnv != "SNAPAGENT_TOKEN" || db.CAFile != "/etc/snapcompose/agent-ca.pem" || db.Timeout != 0 || db.RootFS != "" {
		t.Errorf("db-2 = %+v", db)
	}
	if got, want := db.Endpoint("/v1/capture").String(), "https://db-2.example.com:7071/agent/v1/capture"; got != want {
		t.Errorf("endpoint = %s, want %s (under the url's path)", got, want)
	}
	if _, ok := f.Lookup("nope"); ok {
		t.Error("Lookup(nope) found a host")
	}
}

// TestParseErrors checks that every problem names the file and the field,
// and that a file with several problems reports them all.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const file = "hosts.yaml"
	tests := []struct {
		name string
		body string
		want []string // fragments of the message, besides the file name
	}{
		{"empty file", ``, []string{"is empty"}},
		{"not yaml", "hosts: [unclosed", []string{"not valid YAML"}},
		{"top level list", "- a\n- b\n", []string{"must be a mapping, not a list"}},
		{"no hosts key", "agents: {}\n", []string{"agents: unknown field: want hosts", "hosts: missing"}},
		{"hosts is a list", "hosts: [a, b]\n", []string{"hosts: must be a mapping, not a list"}},
		{"no hosts defined", "hosts: {}\n", []string{"hosts: no hosts are defined"}},
		{"bad scheme", "hosts:\n  production_server_1:\n    url: ftp://x:21\n    token_env: T\n",
			[]string{`hosts.yaml: hosts.production_server_1.url: scheme "ftp" not accepted: want http or https`}},
		{"no scheme", "hosts:\n  a:\n    url: 127.0.0.1:7071\n    token_env: T\n", []string{"hosts.a.url:"}},
		{"no host in url", "hosts:\n  a:\n    url: http://\n    token_env: T\n", []string{"hosts.a.url:", "names no host"}},
		{"credentials in url", "hosts:\n  a:\n    url: http://me:s3cret@h:1\n    token_env: T\n", []string{"hosts.a.url: must not carry credentials"}},
		{"query in url", "hosts:\n  a:\n    url: http://h:1/?token=x\n    token_env: T\n", []string{"hosts.a.url:", "no query"}},
		{"bad port", "hosts:\n  a:\n    url: http://h:99999\n    token_env: T\n", []string{"hosts.a.url:"}},
		{"url missing", "hosts:\n  a:\n    token_env: T\n", []string{"hosts.a.url: missing"}},
		{"url is a number", "hosts:\n  a:\n    url: 7071\n    token_env: T\n", []string{"hosts.a.url: must be a string, not a number"}},
		{"no token", "hosts:\n  a:\n    url: http://h:1\n", []string{"hosts.a: no token"}},
		{"two tokens", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    token_file: t\n", []string{"hosts.a: token_file and token_env are both set"}},
		{"bad token env", "hosts:\n  a:\n    url: http://h:1\n    token_env: 1-X\n", []string{"hosts.a.token_env:", "not a variable name"}},
		{"empty token file", "hosts:\n  a:\n    url: http://h:1\n    token_file: \"\"\n", []string{"hosts.a.token_file: must not be empty"}},
		{"ca file with http", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    ca_file: ca.pem\n", []string{"hosts.a.ca_file: is only used with an https url"}},
		{"bad timeout", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    timeout: soon\n", []string{"hosts.a.timeout:", "not a duration"}},
		{"unitless timeout", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    timeout: 30\n", []string{"hosts.a.timeout:", "give a unit"}},
		{"negative timeout", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    timeout: -1s\n", []string{"hosts.a.timeout: must be positive"}},
		{"huge timeout", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    timeout: 100h\n", []string{"hosts.a.timeout: must be at most"}},
		{"unknown field", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    tokn: x\n", []string{"hosts.a.tokn: unknown field: want url, token_file, token_env, ca_file, timeout, rootfs"}},
		{"empty rootfs", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    rootfs: ''\n", []string{"hosts.a.rootfs: must not be empty"}},
		{"rootfs is a list", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n    rootfs: [/a]\n", []string{"hosts.a.rootfs: must be a string, not a list"}},
		{"host is a string", "hosts:\n  a: http://h:1\n", []string{"hosts.a: must be a mapping, not a string"}},
		{"bad host name", "hosts:\n  -bad:\n    url: http://h:1\n    token_env: T\n", []string{`hosts.-bad: invalid host name "-bad"`}},
		{"duplicate host", "hosts:\n  a:\n    url: http://h:1\n    token_env: T\n  a:\n    url: http://h:2\n    token_env: T\n", []string{"hosts.a: defined more than once"}},
		{"several problems at once", "hosts:\n  a:\n    url: ftp://h\n    token_env: T\n  b:\n    url: http://h:1\n  c:\n    url: http://h:1\n    token_env: T\n    extra: 1\n",
			[]string{"3 problems", "hosts.a.url: scheme", "hosts.b: no token", "hosts.c.extra: unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := hosts.Parse(file, []byte(tt.body))
			if err == nil {
				t.Fatalf("Parse succeeded with hosts %v, want an error", f.Names())
			}
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Errorf("code = %s, want %s", code, domain.EINVALID)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, file+": ") {
				t.Errorf("message does not begin with the file name:\n%s", msg)
			}
			for _, frag := range tt.want {
				if !strings.Contains(msg, frag) {
					t.Errorf("message does not mention %q:\n%s", frag, msg)
				}
			}
		})
	}
}

func TestParseNeverQuotesCredentials(t *testing.T) {
	t.Parallel()
	_, err := hosts.Parse("h.yaml", []byte("hosts:\n  a:\n    url: http://me:s3cret@h:1/?token=t0k3n\n    token_env: T\n"))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, secret := range []string{"s3cret", "t0k3n"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("message quotes %q: %s", secret, err)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name  string
		setup func(t *testing.T) string // returns the path to load
		want  []string
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(dir, "none.yaml") }, []string{"none.yaml", "no such file"}},
		{"directory", func(t *testing.T) string { return dir }, []string{"is not a regular file"}},
		{"too large", func(t *testing.T) string {
			p := filepath.Join(dir, "big.yaml")
			write(t, p, "# "+strings.Repeat("x", hosts.MaxFileBytes)+"\n")
			return p
		}, []string{"big.yaml", "more than the 1MiB allowed"}},
		{"invalid", func(t *testing.T) string {
			p := filepath.Join(dir, "bad.yaml")
			write(t, p, "hosts:\n  a:\n    url: gopher://h\n    token_env: T\n")
			return p
		}, []string{"bad.yaml: hosts.a.url: scheme \"gopher\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.setup(t)
			_, err := hosts.Load(path)
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Fatalf("code = %q (%v), want %s", code, err, domain.EINVALID)
			}
			for _, frag := range tt.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("message does not mention %q:\n%s", frag, err)
				}
			}
		})
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "secrets", "good.token"), "  tok-123 \n")
	write(t, filepath.Join(dir, "secrets", "empty.token"), "\n")
	write(t, filepath.Join(dir, "secrets", "crlf.token"), "tok\r\ninjected: header")
	write(t, filepath.Join(dir, "hosts.yaml"), `hosts:
  good: {url: "http://h:1", token_file: secrets/good.token}
  empty: {url: "http://h:1", token_file: secrets/empty.token}
  crlf: {url: "http://h:1", token_file: secrets/crlf.token}
  missing: {url: "http://h:1", token_file: secrets/none.token}
  env: {url: "http://h:1", token_env: AGENT_TOKEN}
  unset: {url: "http://h:1", token_env: UNSET_TOKEN}
`)
	f, err := hosts.Load(filepath.Join(dir, "hosts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(name string) string {
		if name == "AGENT_TOKEN" {
			return "env-tok\n"
		}
		return ""
	}
	tests := []struct {
		host    string
		want    string
		wantErr string
	}{
		{"good", "tok-123", ""},
		{"env", "env-tok", ""},
		{"empty", "", "hosts.empty.token_file:"},
		{"crlf", "", "hosts.crlf.token_file: the token contains characters"},
		{"missing", "", "hosts.missing.token_file: cannot read"},
		{"unset", "", "hosts.unset.token_env: environment variable UNSET_TOKEN is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			h, _ := f.Lookup(tt.host)
			got, err := h.Token(getenv)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("Token() = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "hosts.yaml") {
				t.Errorf("Token() error = %v, want EINVALID naming the hosts file and %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "injected") {
				t.Errorf("the message quotes the token: %v", err)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "junk.pem"), "not a certificate")
	write(t, filepath.Join(dir, "hosts.yaml"), `hosts:
  plain: {url: "http://h:1", token_env: T}
  system: {url: "https://h:1", token_env: T}
  junk: {url: "https://h:1", token_env: T, ca_file: junk.pem}
  missing: {url: "https://h:1", token_env: T, ca_file: none.pem}
`)
	f, err := hosts.Load(filepath.Join(dir, "hosts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := mustHost(t, f, "plain").TLSConfig(); cfg != nil || err != nil {
		t.Errorf("plain: TLSConfig() = %v, %v; want nil, nil", cfg, err)
	}
	if cfg, err := mustHost(t, f, "system").TLSConfig(); err != nil || cfg == nil || cfg.RootCAs != nil {
		t.Errorf("system: TLSConfig() = %v, %v; want the system roots", cfg, err)
	}
	for _, name := range []string{"junk", "missing"} {
		_, err := mustHost(t, f, name).TLSConfig()
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), "hosts."+name+".ca_file") {
			t.Errorf("%s: TLSConfig() error = %v, want EINVALID naming hosts.%s.ca_file", name, err, name)
		}
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func mustHost(t *testing.T, f *hosts.File, name string) *hosts.Host {
	t.Helper()
	h, ok := f.Lookup(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return h
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzHosts checks that no input makes the parser panic, that every failure
// is an EINVALID naming the file, and that every host it accepts is usable.
func FuzzHosts(f *testing.F) {
	// The bad-input catalogue's hosts files.
	catalogue, _ := filepath.Glob("../../testdata/bad/hosts/*.yaml")
	for _, file := range catalogue {
		if body, err := os.ReadFile(file); err == nil {
			f.Add(body)
		}
	}

	for _, seed := range []string{
		"hosts:\n  a:\n    url: http://127.0.0.1:7071\n    token_env: T\n",
		"hosts:\n  a: {url: 'https://h:1/p', token_file: t, ca_file: c.pem, timeout: 5s}\n",
		"hosts: &x\n  a: *x\n",
		"hosts:\n  <<: {a: {url: 'http://h:1', token_env: T}}\n",
		"hosts: {a: {url: ftp://x}, b: [1], c: null}\n",
		"---\n...\n",
		"\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		file, err := hosts.Parse("fuzz.yaml", body)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error is not an EINVALID naming the file: %v", err)
			}
			return
		}
		for _, name := range file.Names() {
			h, _ := file.Lookup(name)
			if h.URL == nil || (h.URL.Scheme != "http" && h.URL.Scheme != "https") || h.URL.Host == "" || h.URL.User != nil {
				t.Fatalf("host %s accepted with url %v", name, h.URL)
			}
			if (h.TokenFile == "") == (h.TokenEnv == "") {
				t.Fatalf("host %s accepted with token_file %q and token_env %q", name, h.TokenFile, h.TokenEnv)
			}
			_ = h.Endpoint("/v1/capture").String()
		}
	})
}
