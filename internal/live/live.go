// Package live retrieves snapshots of live hosts: it asks the snapagent a
// hosts file names for a capture of a path (package agentapi is the
// protocol) and turns the capture into a domain.Snapshot.
//
// Every failure names the host and the path and is EUNAVAILABLE, except an
// unknown host (ENOTFOUND) and a hosts file whose token or CA cannot be read
// (EINVALID). Failures that may pass — the agent is down or slow, or failed on
// its side (5xx) — are marked: their *Error's Temporary reports true, so a
// caller that retries knows which ones to retry. A refused token, a refused
// path, an undecodable or oversized capture are not retried: the answer
// would be the same. Nothing of a failed capture is kept.
package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/hosts"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// Defaults for the limits on one capture. A capture is JSON of about 200
// bytes a file, so 256 MiB holds a tree of over a million files; past that
// a composition should capture a narrower path.
const (
	DefaultMaxCaptureBytes = 256 << 20
	DefaultMaxFiles        = 1_000_000
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Source retrieves live sources through the agents of a hosts file. It is
// safe for concurrent use.
type Source struct {
	hosts    *hosts.File
	getenv   func(string) string
	maxBytes int64
	maxFiles int

	mu      sync.Mutex
	clients map[string]*http.Client // by host name
}

var _ domain.SnapshotSource = (*Source)(nil)

// Option configures a Source.
type Option func(*Source)

// WithMaxCaptureBytes bounds the size of a capture's JSON (default 256 MiB).
func WithMaxCaptureBytes(n int64) Option { return func(s *Source) { s.maxBytes = n } }

// WithMaxFiles bounds the number of files a capture may list (default 1,000,000).
func WithMaxFiles(n int) Option { return func(s *Source) { s.maxFiles = n } }

// WithGetenv makes token_env read from getenv instead of the process
// environment.
func WithGetenv(getenv func(string) string) Option { return func(s *Source) { s.getenv = getenv } }

// New returns a source that reaches the agents h names.
func New(h *hosts.File, opts ...Option) *Source {
	s := &Source{
		hosts:    h,
		maxBytes: DefaultMaxCaptureBytes,
		maxFiles: DefaultMaxFiles,
		clients:  map[string]*http.Client{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Error is a failed request to an agent. Its Err carries the domain code
// and the message for the user, which names the host and the path.
type Error struct {
	Host string
	Path string // the captured path, or "" for a blob
	Err  *domain.Error
	// transient marks a failure that may pass: see Temporary.
	transient bool
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again may succeed: the agent could not be
// reached, did not answer in time, or failed on its side (5xx, 429).
func (e *Error) Temporary() bool { return e.transient }

// request says what one call to an agent is for, so that failures are
// described in the user's terms.
type request struct {
	host *hosts.Host
	path string // the captured path, for Retrieve
	what string // "capturing /var/app on host \"h\"", the start of every message
}

func (r request) fail(transient bool, format string, args ...any) *Error {
	return &Error{
		Host:      r.host.Name,
		Path:      r.path,
		Err:       domain.Errorf(domain.EUNAVAILABLE, "%s: %s", r.what, fmt.Sprintf(format, args...)),
		transient: transient,
	}
}

// Retrieve captures the live source src through its host's agent. It returns
// ENOTFOUND when the hosts file has no such host, EINVALID when the host's
// token or CA file cannot be used (naming the hosts file and field), and
// EUNAVAILABLE, as an *Error naming the host and path, when the agent cannot
// be reached, refuses the token or the path, fails, or sends a capture that
// is malformed or larger than the limits.
func (s *Source) Retrieve(ctx context.Context, src domain.Source) (*domain.Snapshot, error) {
	if src.Type != domain.LiveSource {
		return nil, domain.Errorf(domain.EINVALID, "the live source cannot retrieve %s source %s", src.Type, src.Ref())
	}
	if !path.IsAbs(src.Path) || path.Clean(src.Path) != src.Path {
		// The manifest checks this; a rootfs relies on it.
		return nil, domain.Errorf(domain.EINVALID, "%s: the path must be absolute and clean", src.Ref())
	}
	h, err := s.host(src.Host)
	if err != nil {
		return nil, err
	}
	req := request{host: h, path: src.Path, what: fmt.Sprintf("capturing %s on host %q", src.Path, src.Host)}
	body, err := json.Marshal(agentapi.CaptureRequest{Path: onAgent(h.RootFS, src.Path)})
	if err != nil {
		return nil, fmt.Errorf("encoding capture request: %w", err)
	}

	ctx, cancel := withTimeout(ctx, h.Timeout)
	defer cancel()
	resp, err := s.do(ctx, req, http.MethodPost, h.Endpoint("/v1/capture"), body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	capture, err := s.decode(ctx, req, resp)
	if err != nil {
		return nil, err
	}
	fromAgent(h.RootFS, capture)
	snap, err := convert(src, capture)
	if err != nil {
		return nil, req.fail(false, "the agent at %s sent a capture snapcompose cannot use: %v", h.URL.Redacted(), err)
	}
	return snap, nil
}

// Blob opens the captured file with the given digest on host, for
// materialising a composition. The bytes are checked against the digest as
// they are read: a mismatch fails the last Read. Close releases the
// connection. Errors are as for Retrieve; a malformed digest is EINVALID.
func (s *Source) Blob(ctx context.Context, host, digest string) (io.ReadCloser, error) {
	if !digestPattern.MatchString(digest) {
		return nil, domain.Errorf(domain.EINVALID, "blob digest %q is not of the form sha256:<64 hex digits>", truncate(digest, 80))
	}
	h, err := s.host(host)
	if err != nil {
		return nil, err
	}
	req := request{host: h, what: fmt.Sprintf("fetching blob %s from host %q", digest, host)}
	// The host's timeout bounds waiting for the answer, not reading a blob
	// that may be large, so it is a timer stopped once the answer is in.
	ctx, cancel := context.WithCancelCause(ctx)
	var timer *time.Timer
	if h.Timeout > 0 {
		timer = time.AfterFunc(h.Timeout, func() { cancel(errAnswerTimeout) })
	}
	resp, err := s.do(ctx, req, http.MethodGet, h.Endpoint("/v1/blobs/"+url.PathEscape(digest)), nil)
	if fired := timer != nil && !timer.Stop(); fired || err != nil {
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("%s: %w", req.what, context.Cause(ctx))
		}
		timedOut := errors.Is(context.Cause(ctx), errAnswerTimeout)
		cancel(nil)
		if timedOut {
			return nil, req.fail(true, "the agent at %s did not answer within %s", h.URL.Redacted(), h.Timeout)
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, s.status(req, resp)
	}
	hexSum := strings.TrimPrefix(digest, "sha256:")
	return &verifiedBody{body: resp.Body, cancel: func() { cancel(nil) }, sum: sha256.New(), want: hexSum, req: req}, nil
}

// errAnswerTimeout is why a blob request was cut off: the host's timeout
// passed before the agent answered.
var errAnswerTimeout = errors.New("no answer in time")

// onAgent returns where an agent that sees the host's file system at rootfs
// finds the host's path p.
func onAgent(rootfs, p string) string {
	if rootfs == "" {
		return p
	}
	return path.Join(rootfs, p)
}

// fromAgent maps the paths an agent reported under rootfs back to the
// host's view: file paths, executables, working directories and command
// line arguments that lie under it. Paths elsewhere are left alone; a file
// among them makes the capture unusable, as it lies outside the captured
// path.
func fromAgent(rootfs string, c *agentapi.Capture) {
	if rootfs == "" {
		return
	}
	hostPath := func(p string) string {
		switch {
		case p == rootfs:
			return "/"
		case strings.HasPrefix(p, rootfs+"/"):
			return p[len(rootfs):]
		}
		return p
	}
	c.Path = hostPath(c.Path)
	for i := range c.Files {
		c.Files[i].Path = hostPath(c.Files[i].Path)
	}
	for i := range c.Processes {
		p := &c.Processes[i]
		p.Exe, p.Cwd = hostPath(p.Exe), hostPath(p.Cwd)
		for j := range p.Cmdline {
			p.Cmdline[j] = hostPath(p.Cmdline[j])
		}
	}
}

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// verifiedBody checks a blob against its digest as it is read.
type verifiedBody struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	sum    hash.Hash
	want   string
	req    request
}

func (b *verifiedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.sum.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(b.sum.Sum(nil)); got != b.want {
			return n, b.req.fail(false, "the blob the agent sent has digest sha256:%s", got)
		}
	} else if err != nil {
		return n, b.req.fail(true, "reading the blob: %v", unwrapURLError(err))
	}
	return n, err
}

func (b *verifiedBody) Close() error {
	err := b.body.Close()
	b.cancel()
	return err
}

func (s *Source) host(name string) (*hosts.Host, error) {
	h, ok := s.hosts.Lookup(name)
	if !ok {
		have := "none"
		if names := s.hosts.Names(); len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		return nil, domain.Errorf(domain.ENOTFOUND, "host %q is not in hosts file %s (have: %s)", name, s.hosts.Name(), have)
	}
	return h, nil
}

// withTimeout bounds ctx by d, when d is set.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// do sends one authenticated request and returns the response, or an
// *Error saying why there is none. The caller closes the body.
func (s *Source) do(ctx context.Context, req request, method string, u *url.URL, body []byte) (*http.Response, error) {
	token, err := req.host.Token(s.getenv)
	if err != nil {
		return nil, err
	}
	client, err := s.client(req.host)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("building request to %s: %w", u.Redacted(), err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/json")
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := client.Do(hr)
	if err != nil {
		return nil, s.transportError(ctx, req, err, time.Since(start))
	}
	return resp, nil
}

// transportError explains a request that got no response.
func (s *Source) transportError(ctx context.Context, req request, err error, elapsed time.Duration) error {
	agent := req.host.URL.Redacted()
	if errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// The caller gave up; that is not the agent's fault, and not worth a retry.
		return fmt.Errorf("%s: %w", req.what, ctx.Err())
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return req.fail(true, "the agent at %s did not answer within %s", agent, elapsed.Round(time.Millisecond))
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return req.fail(true, "the agent at %s refused the connection: is snapagent running there?", agent)
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		record           tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verification):
		return req.fail(false, "the agent at %s has a certificate that cannot be verified (set ca_file for host %q in %s): %v",
			agent, req.host.Name, req.host.File(), unwrapURLError(err))
	case errors.As(err, &record):
		return req.fail(false, "the agent at %s does not speak TLS: use an http:// url for it in %s", agent, req.host.File())
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return req.fail(false, "the agent's address %s does not resolve: %v", agent, dnsErr)
	}
	return req.fail(true, "cannot reach the agent at %s: %v", agent, unwrapURLError(err))
}

// status explains a response whose status is not 200.
func (s *Source) status(req request, resp *http.Response) error {
	agent := req.host.URL.Redacted()
	code := resp.StatusCode
	var apiErr agentapi.Error
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := ""
	if json.Unmarshal(raw, &apiErr) == nil && apiErr.Message != "" {
		msg = sanitize(apiErr.Message)
	}
	detail := func() string {
		if msg == "" {
			return http.StatusText(code)
		}
		return msg
	}
	switch {
	case code == http.StatusUnauthorized:
		// The agent's own message is not relayed: it could only restate
		// the refusal, and this one says where the token comes from.
		return req.fail(false, "the agent at %s refused the token (HTTP %d): check %s for host %q in %s",
			agent, code, tokenSource(req.host), req.host.Name, req.host.File())
	case code == http.StatusForbidden:
		// snapagent answers 403 for a path outside the roots it serves.
		return req.fail(false, "the agent at %s refused the path (HTTP %d): %s", agent, code, detail())
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return req.fail(true, "the agent at %s is busy (HTTP %d): %s", agent, code, detail())
	case code >= 300 && code < 400:
		return req.fail(false, "the agent at %s redirected the request (HTTP %d); agents are called directly, so give the final url in %s",
			agent, code, req.host.File())
	case code >= 400 && code < 500:
		return req.fail(false, "the agent at %s refused the request (HTTP %d): %s", agent, code, detail())
	case code >= 500:
		return req.fail(true, "the agent at %s failed (HTTP %d): %s", agent, code, detail())
	default:
		return req.fail(false, "the agent at %s answered with unexpected status HTTP %d", agent, code)
	}
}

func tokenSource(h *hosts.Host) string {
	if h.TokenEnv != "" {
		return "token_env (" + h.TokenEnv + ")"
	}
	return "token_file (" + h.TokenFile + ")"
}

// decode reads the capture from a response, within the limits.
func (s *Source) decode(ctx context.Context, req request, resp *http.Response) (*agentapi.Capture, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, s.status(req, resp)
	}
	if resp.ContentLength > s.maxBytes {
		return nil, s.oversized(req, fmt.Sprintf("%s of JSON (it is %s)", quantity.FormatBytes(s.maxBytes), quantity.FormatBytes(resp.ContentLength)))
	}
	counted := &countingReader{r: io.LimitReader(resp.Body, s.maxBytes+1)}
	dec := json.NewDecoder(counted)
	var c agentapi.Capture
	err := dec.Decode(&c)
	if err == nil {
		// One JSON value and nothing after it.
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			err = errors.New("unexpected data after the capture")
		}
	}
	if counted.n > s.maxBytes {
		return nil, s.oversized(req, quantity.FormatBytes(s.maxBytes)+" of JSON")
	}
	if err != nil {
		var netErr net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) || ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, fmt.Errorf("%s: %w", req.what, ctx.Err())
			}
			return nil, req.fail(true, "the agent at %s did not finish sending the capture in time", req.host.URL.Redacted())
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && counted.n > 0 {
			// snapagent streams the capture while it walks; when the walk
			// fails half way it says why in a trailer, readable once the
			// body is drained.
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			if why := resp.Trailer.Get("Snapagent-Error"); why != "" {
				return nil, req.fail(false, "the agent at %s gave up on the capture: %s", req.host.URL.Redacted(), sanitize(why))
			}
			return nil, req.fail(true, "the agent at %s stopped sending the capture after %s", req.host.URL.Redacted(), quantity.FormatBytes(counted.n))
		}
		return nil, req.fail(false, "the agent at %s sent a capture that cannot be decoded: %v", req.host.URL.Redacted(), err)
	}
	if len(c.Files) > s.maxFiles {
		return nil, s.oversized(req, fmt.Sprintf("%d files (it lists %d)", s.maxFiles, len(c.Files)))
	}
	return &c, nil
}

func (s *Source) oversized(req request, limit string) error {
	return &Error{
		Host: req.host.Name,
		Path: req.path,
		Err: domain.Errorf(domain.EUNAVAILABLE, "capture of %s on host %q is larger than the limit of %s; capture a narrower path",
			req.path, req.host.Name, limit),
	}
}

// client returns the HTTP client for h, made once per host so connections
// are reused. It never follows redirects: the token is for the agent alone.
func (s *Source) client(h *hosts.Host) (*http.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[h.Name]; ok {
		return c, nil
	}
	tlsConfig, err := h.TLSConfig()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	c := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	s.clients[h.Name] = c
	return c, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// unwrapURLError drops the method and URL net/http puts in front of an
// error; messages already name the agent.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sanitize keeps an agent's message printable and short.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return truncate(strings.TrimSpace(s), 500)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
