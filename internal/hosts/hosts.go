// Package hosts reads the hosts file, which maps the host names manifests use
// for live sources to the snapagent that captures each:
//
//	hosts:
//	  production_server_1:
//	    url: https://10.0.4.17:7071       # http or https, nothing else
//	    token_file: secrets/agent.token   # or token_env: SNAPAGENT_TOKEN (exactly one)
//	    ca_file: secrets/agent-ca.pem     # optional, https only: the CA that signed the agent's certificate
//	    timeout: 30s                      # optional: how long one request may take
//	    rootfs: /host                     # optional: where the agent finds this host's file system
//
// Relative token_file, ca_file and rootfs paths are resolved against the
// hosts file's directory. Tokens are read when they are used, not when the
// file is parsed, so a rotated token is picked up without a restart; a token
// never appears in an error, a log or a plan.
//
// rootfs is for an agent that sees the host's file system somewhere other
// than "/": one run in a container with the host mounted at /host, or the
// demo's, which serves an example tree of this repository. Manifests keep
// naming paths as the host knows them (/var/app); the agent is asked for
// rootfs+path, and the paths it reports are mapped back. A relative rootfs
// only makes sense for an agent on the same machine.
package hosts

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// Limits on what the hosts file and the files it names may be, so a mistake
// (pointing token_file at a disk image) fails fast instead of filling memory.
const (
	MaxFileBytes  = 1 << 20  // the hosts file
	MaxTokenBytes = 16 << 10 // a token file
	MaxCABytes    = 1 << 20  // a ca_file
	MaxTimeout    = time.Hour
	maxHostLen    = 253 // bytes; the longest DNS name, as the manifest allows
	maxProblems   = 20
)

// fields lists the keys a host entry may have, in the order messages list them.
var fields = []string{"url", "token_file", "token_env", "ca_file", "timeout", "rootfs"}

// File is a parsed hosts file.
type File struct {
	name  string // as the user gave it, so messages name it the way they know it
	hosts map[string]*Host
}

// Host is one agent a hosts file names.
type Host struct {
	Name string
	// URL is the agent's base URL: scheme http or https, no credentials,
	// query or fragment. Endpoints are appended to its path.
	URL *url.URL
	// TokenFile is the path of the file holding the bearer token, already
	// resolved against the hosts file's directory; "" when TokenEnv is set.
	TokenFile string
	// TokenEnv is the environment variable holding the bearer token.
	TokenEnv string
	// CAFile is the PEM bundle that verifies an https agent's certificate,
	// resolved like TokenFile; "" means the system's roots.
	CAFile string
	// Timeout bounds one request to the agent; 0 leaves it to the caller.
	Timeout time.Duration
	// RootFS is where the agent finds this host's file system, resolved
	// like TokenFile; "" means "/". See the package documentation.
	RootFS string

	file string // the hosts file it came from, for messages
}

// Load reads and parses the hosts file at path. It returns EINVALID naming the
// file (and the field, when one is at fault) when the file cannot be read or
// is malformed.
func Load(path string) (*File, error) {
	body, err := readBounded(path, MaxFileBytes)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "hosts file %s: %v", path, err)
	}
	return Parse(path, body)
}

// Parse parses a hosts file's body. name is the file's path: messages begin
// with it, and relative token_file and ca_file paths resolve against its
// directory. Every problem is reported at once, each with its field path
// ("hosts.production_server_1.url"), in one EINVALID error.
func Parse(name string, body []byte) (*File, error) {
	p := &parser{file: name, dir: filepath.Dir(name)}
	f := &File{name: name, hosts: map[string]*Host{}}
	if len(body) > MaxFileBytes {
		p.problemf("", "is %s, larger than a hosts file may be (%s)", quantity.FormatBytes(int64(len(body))), quantity.FormatBytes(MaxFileBytes))
		return nil, p.err()
	}
	// Documents are loaded as nodes, never into interface values, so that
	// aliases are not expanded.
	loader, err := yaml.NewLoader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("starting the YAML loader: %w", err)
	}
	var doc, extra yaml.Node
	switch err := loader.Load(&doc); {
	case errors.Is(err, io.EOF):
		p.problemf("", "is empty: %s", shape)
		return nil, p.err()
	case err != nil:
		p.problemf("", "not valid YAML: %s", yamlMessage(err))
		return nil, p.err()
	}
	if err := loader.Load(&extra); !errors.Is(err, io.EOF) {
		p.problemf("", "holds more than one YAML document (---): keep one")
		return nil, p.err()
	}
	p.document(&doc, f)
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Name returns the hosts file's path as it was given.
func (f *File) Name() string { return f.name }

// Lookup returns the host called name.
func (f *File) Lookup(name string) (*Host, bool) {
	h, ok := f.hosts[name]
	return h, ok
}

// Names returns the sorted names of every host in the file.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.hosts))
	for n := range f.hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Token reads the host's bearer token now, from its token_file or from
// getenv(token_env) (os.Getenv when getenv is nil), with surrounding
// whitespace removed. It returns EINVALID naming the hosts file and field
// when the token is missing, empty or unfit for an HTTP header; the message
// never quotes the token.
func (h *Host) Token(getenv func(string) string) (string, error) {
	var token, field string
	if h.TokenEnv != "" {
		field = "token_env"
		if getenv == nil {
			getenv = os.Getenv
		}
		token = strings.TrimSpace(getenv(h.TokenEnv))
		if token == "" {
			return "", h.problem(field, "environment variable %s is not set or empty", h.TokenEnv)
		}
	} else {
		field = "token_file"
		body, err := readBounded(h.TokenFile, MaxTokenBytes)
		if err != nil {
			return "", h.problem(field, "%v", err)
		}
		token = strings.TrimSpace(string(body))
		if token == "" {
			return "", h.problem(field, "%s is empty", h.TokenFile)
		}
	}
	for i := 0; i < len(token); i++ {
		// RFC 9110 field values: visible ASCII and spaces. Anything else
		// would be refused by the HTTP client, or worse, split the header.
		if c := token[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			return "", h.problem(field, "the token contains characters an HTTP header cannot carry (control or non-ASCII bytes)")
		}
	}
	return token, nil
}

// TLSConfig returns the TLS settings for an https agent: its ca_file as the
// only trusted root when set, the system's roots otherwise. It returns nil for
// an http agent, and EINVALID naming the file and field when ca_file cannot
// be read or holds no certificate.
func (h *Host) TLSConfig() (*tls.Config, error) {
	if h.URL.Scheme != "https" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.CAFile == "" {
		return cfg, nil
	}
	pem, err := readBounded(h.CAFile, MaxCABytes)
	if err != nil {
		return nil, h.problem("ca_file", "%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, h.problem("ca_file", "%s holds no PEM certificate", h.CAFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Endpoint returns the URL of an agent endpoint such as "/v1/capture",
// under the host URL's path.
func (h *Host) Endpoint(path string) *url.URL {
	u := *h.URL
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	return &u
}

// File returns the path of the hosts file the host came from.
func (h *Host) File() string { return h.file }

func (h *Host) problem(field, format string, args ...any) error {
	return domain.Errorf(domain.EINVALID, "%s: hosts.%s.%s: %s", h.file, h.Name, field, fmt.Sprintf(format, args...))
}

// parser walks the YAML node tree rather than decoding into a struct, so
// that it can reject unknown fields, duplicates and wrong types everywhere
// and report them all at once, each with its field path.
type parser struct {
	file     string
	dir      string
	problems []domain.Problem
}

func (p *parser) problemf(where, format string, args ...any) {
	p.problems = append(p.problems, domain.Problem{Where: where, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems found as one EINVALID error whose message begins
// with the file: the problem itself when there is one, a count and the list
// otherwise.
func (p *parser) err() error {
	switch n := len(p.problems); {
	case n == 0:
		return nil
	case n == 1:
		return domain.Errorf(domain.EINVALID, "%s: %s", p.file, p.problems[0])
	default:
		problems := p.problems
		if n > maxProblems {
			problems = append(problems[:maxProblems:maxProblems], domain.Problem{Message: fmt.Sprintf("... and %d more", n-maxProblems)})
		}
		return domain.Invalid(fmt.Sprintf("%s: %d problems", p.file, n), problems)
	}
}

const shape = "a hosts file looks like `hosts: {NAME: {url: http://HOST:PORT, token_file: FILE}}`"

func (p *parser) document(doc *yaml.Node, f *File) {
	if doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0) {
		p.problemf("", "is empty: %s", shape)
		return
	}
	root := doc
	if root.Kind == yaml.DocumentNode {
		root = root.Content[0]
	}
	top, ok := p.mapping("", root, []string{"hosts"})
	if !ok {
		return
	}
	hostsNode, ok := top["hosts"]
	if !ok {
		p.problemf("hosts", "missing: %s", shape)
		return
	}
	entries, ok := p.entries("hosts", hostsNode)
	if !ok {
		return
	}
	if len(entries) == 0 {
		p.problemf("hosts", "no hosts are defined: %s", shape)
	}
	for _, e := range entries {
		where := "hosts." + e.key
		if !validHostName(e.key) {
			p.problemf(where, "invalid host name %s: want 1 to %d letters, digits, '-', '_' or '.', starting with a letter or digit, as manifests name it", quote(e.key), maxHostLen)
			continue
		}
		if h := p.host(where, e.key, e.value); h != nil {
			f.hosts[e.key] = h
		}
	}
}

// entry is one key of a mapping with its value.
type entry struct {
	key   string
	value *yaml.Node
}

// entries returns the keys of a mapping in document order, reporting
// non-string and duplicate keys.
func (p *parser) entries(where string, n *yaml.Node) ([]entry, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.problemf(where, "must be a mapping, not %s", describe(n))
		return nil, false
	}
	var out []entry
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			p.problemf(where, "keys must be plain names, not %s (line %d)", describe(k), k.Line)
			continue
		}
		if seen[k.Value] {
			p.problemf(join(where, k.Value), "defined more than once (again on line %d)", k.Line)
			continue
		}
		seen[k.Value] = true
		out = append(out, entry{k.Value, v})
	}
	return out, true
}

// mapping returns a mapping's values by key, reporting keys that are not
// in known.
func (p *parser) mapping(where string, n *yaml.Node, known []string) (map[string]*yaml.Node, bool) {
	entries, ok := p.entries(where, n)
	if !ok {
		return nil, false
	}
	m := map[string]*yaml.Node{}
	for _, e := range entries {
		if !slices.Contains(known, e.key) {
			p.problemf(join(where, e.key), "unknown field: want %s", strings.Join(known, ", "))
			continue
		}
		m[e.key] = e.value
	}
	return m, true
}

func (p *parser) host(where, name string, n *yaml.Node) *Host {
	m, ok := p.mapping(where, n, fields)
	if !ok {
		return nil
	}
	before := len(p.problems)
	h := &Host{Name: name, file: p.file}

	if v, ok := p.str(where, "url", m); ok {
		h.URL = p.url(where+".url", v)
	} else if _, present := m["url"]; !present {
		p.problemf(where+".url", "missing: the agent's address, such as http://127.0.0.1:7071")
	}

	tokenFile, hasFile := p.str(where, "token_file", m)
	tokenEnv, hasEnv := p.str(where, "token_env", m)
	_, fileGiven := m["token_file"]
	_, envGiven := m["token_env"]
	switch {
	case fileGiven && envGiven:
		p.problemf(where, "token_file and token_env are both set: keep exactly one")
	case !fileGiven && !envGiven:
		p.problemf(where, "no token: set token_file (a file holding the agent's token) or token_env (a variable holding it)")
	case hasFile:
		if tokenFile == "" {
			p.problemf(where+".token_file", "must not be empty")
		} else {
			h.TokenFile = p.resolve(tokenFile)
		}
	case hasEnv:
		if !validEnvName(tokenEnv) {
			p.problemf(where+".token_env", "%s is not a variable name: letters, digits and '_', not starting with a digit", quote(tokenEnv))
		} else {
			h.TokenEnv = tokenEnv
		}
	}

	if v, ok := p.str(where, "ca_file", m); ok {
		switch {
		case v == "":
			p.problemf(where+".ca_file", "must not be empty; leave it out to trust the system's roots")
		case h.URL != nil && h.URL.Scheme != "https":
			p.problemf(where+".ca_file", "is only used with an https url, and url is %s", h.URL.Scheme)
		default:
			h.CAFile = p.resolve(v)
		}
	}

	if v, ok := p.str(where, "timeout", m); ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			p.problemf(where+".timeout", "%s is not a duration: want one such as 30s or 2m", quote(v))
		case d <= 0:
			p.problemf(where+".timeout", "must be positive, got %s", quote(v))
		case d > MaxTimeout:
			p.problemf(where+".timeout", "must be at most %s, got %s", MaxTimeout, quote(v))
		default:
			h.Timeout = d
		}
	}
	if v, ok := p.str(where, "rootfs", m); ok {
		switch {
		case v == "":
			p.problemf(where+".rootfs", "must not be empty; leave it out when the agent sees the host's file system at /")
		default:
			// The agent is sent absolute paths: a relative rootfs becomes
			// absolute here, on the machine the agent must then share.
			abs, err := filepath.Abs(p.resolve(v))
			if err != nil {
				p.problemf(where+".rootfs", "cannot be made absolute: %v", err)
				break
			}
			if h.RootFS = abs; h.RootFS == "/" {
				h.RootFS = ""
			}
		}
	}
	if len(p.problems) > before {
		return nil
	}
	return h
}

// str returns the string value of field in m: ok is false when the field is
// absent or (reported) not a string.
func (p *parser) str(where, field string, m map[string]*yaml.Node) (string, bool) {
	n, present := m[field]
	if !present {
		return "", false
	}
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		hint := ""
		if field == "timeout" && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			hint = ": give a unit, such as 30s"
		}
		p.problemf(where+"."+field, "must be a string, not %s%s", describe(n), hint)
		return "", false
	}
	return n.Value, true
}

func (p *parser) url(where, s string) *url.URL {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		p.problemf(where, "%s is not a URL: %v", quote(s), err)
	case u.Scheme != "http" && u.Scheme != "https":
		if u.Scheme == "" {
			p.problemf(where, "%s has no scheme: want http:// or https://", quote(s))
		} else {
			p.problemf(where, "scheme %s not accepted: want http or https", quote(u.Scheme))
		}
	case u.Host == "" || u.Hostname() == "":
		p.problemf(where, "%s names no host: want one such as http://127.0.0.1:7071", quote(s))
	case u.User != nil:
		// Credentials in the URL would end up in logs and messages; the
		// token belongs in token_file or token_env.
		p.problemf(where, "must not carry credentials (user:password@): put the token in token_file or token_env")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		p.problemf(where, "%s must have no query or fragment", quote(redact(u)))
	case u.Opaque != "":
		p.problemf(where, "%s is not a URL of the form http://HOST:PORT", quote(s))
	default:
		if port := u.Port(); port != "" && !validPort(port) {
			p.problemf(where, "port %s is not a port number (1-65535)", quote(port))
			return nil
		}
		return u
	}
	return nil
}

func (p *parser) resolve(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.dir, path)
}

// readBounded reads a regular file of at most limit bytes. Its errors name
// the file and say what is wrong, without Go's "open" prefixes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("%s is %s, more than the %s allowed", path, quantity.FormatBytes(info.Size()), quantity.FormatBytes(limit))
	}
	body, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s is more than the %s allowed", path, quantity.FormatBytes(limit))
	}
	return body, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// deref follows an alias to the node it names. Aliases cannot nest deeper
// than the fixed shape of the file, so no alias expansion can blow up.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "nothing"
}

// yamlMessage shortens a YAML syntax error to its useful part.
func yamlMessage(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "construct errors: ")
	msg = strings.ReplaceAll(msg, "yaml: ", "")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// quote quotes s for a message, shortened so a hostile file cannot make
// messages arbitrarily long.
func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func redact(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery, r.Fragment = "", ""
	return r.String() + "?..."
}

func validHostName(s string) bool {
	if s == "" || len(s) > maxHostLen || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 256 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

func validPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n >= 1 && n <= 65535
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// String describes the host for messages: its name and URL, never its token.
func (h *Host) String() string {
	return fmt.Sprintf("%s (%s)", h.Name, h.URL.Redacted())
}
