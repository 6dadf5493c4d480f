package snapagent

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Defaults for the Config fields left zero.
const (
	DefaultSampleInterval = 10 * time.Second
	DefaultHistorySamples = 360 // an hour at the default interval
	DefaultMaxFiles       = 1_000_000
	DefaultProcRoot       = "/proc"

	// MinTokenBytes is the shortest bearer token the agent accepts.
	MinTokenBytes = 16
	// maxHistorySamples bounds HistorySamples: a day at one sample a second.
	maxHistorySamples = 86_400
)

// ServiceMatch names processes that belong to every capture even when they
// do not run from under the captured path, such as a system database the
// application uses. A process matches when every criterion that is set
// matches.
type ServiceMatch struct {
	Name string // the service the matching processes form
	// ExeGlob is matched (path.Match) against the executable's path, or
	// against its base name when the pattern has no '/'.
	ExeGlob string
	// CmdlineContains must occur in the command line, its arguments joined
	// by single spaces.
	CmdlineContains string
}

func (m ServiceMatch) matches(exe string, cmdline []string) bool {
	if m.ExeGlob != "" {
		subject := exe
		if !strings.Contains(m.ExeGlob, "/") {
			subject = path.Base(exe)
		}
		if ok, _ := path.Match(m.ExeGlob, subject); !ok || exe == "" {
			return false
		}
	}
	if m.CmdlineContains != "" && !strings.Contains(strings.Join(cmdline, " "), m.CmdlineContains) {
		return false
	}
	return true
}

// Config configures an Agent. Zero fields take the defaults above.
type Config struct {
	Roots          []string // absolute directories the agent may capture
	Token          string   // the bearer token clients must send, at least MinTokenBytes long
	Services       []ServiceMatch
	SampleInterval time.Duration // how often Run samples usage
	HistorySamples int           // samples kept per service
	MaxFiles       int           // most files in one capture, and in the digest memory
	Hostname       string        // reported in captures; default os.Hostname
	ProcRoot       string        // where procfs is mounted; tests point it at a fake tree

	// CgroupRoot is where the cgroup v2 hierarchy is mounted; empty finds it
	// in ProcRoot/self/mountinfo, "none" turns cgroup accounting off.
	CgroupRoot string
	// Logger receives capture summaries and internal errors, never the
	// token; nil discards them.
	Logger *slog.Logger
}

// root is one configured root: as given (cleaned) and with its symlinks
// resolved when the agent started. Walks and opens use real.
type root struct {
	given, real string
}

// New validates cfg and returns an agent for it. Every problem is reported
// at once, as an EINVALID error naming the field.
func New(cfg Config) (*Agent, error) {
	var problems []domain.Problem
	add := func(where, format string, args ...any) {
		problems = append(problems, domain.Problem{Where: where, Message: fmt.Sprintf(format, args...)})
	}

	var roots []root
	if len(cfg.Roots) == 0 {
		add("Roots", "at least one root directory is required")
	}
	for i, r := range cfg.Roots {
		where := fmt.Sprintf("Roots[%d]", i)
		rt, err := validateRoot(r)
		if err != nil {
			add(where, "%v", err)
			continue
		}
		dup := false
		for _, have := range roots {
			dup = dup || have.real == rt.real && have.given == rt.given
		}
		if !dup {
			roots = append(roots, rt)
		}
	}

	switch {
	case cfg.Token == "":
		add("Token", "a bearer token is required")
	case len(cfg.Token) < MinTokenBytes:
		add("Token", "the token is %d bytes long; use at least %d random bytes", len(cfg.Token), MinTokenBytes)
	case strings.IndexFunc(cfg.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		add("Token", "the token contains whitespace or control characters, which cannot be sent in an Authorization header")
	}

	for i, m := range cfg.Services {
		where := fmt.Sprintf("Services[%d]", i)
		if serviceName(m.Name) == "" || strings.TrimSpace(m.Name) == "" {
			add(where+".Name", "a service name with at least one letter or digit is required")
		}
		if m.ExeGlob == "" && m.CmdlineContains == "" {
			add(where, "set ExeGlob or CmdlineContains, or the match would take every process")
		}
		if m.ExeGlob != "" {
			if _, err := path.Match(m.ExeGlob, "x"); err != nil {
				add(where+".ExeGlob", "%q is not a valid glob: %v", m.ExeGlob, err)
			}
		}
	}

	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = DefaultSampleInterval
	}
	if cfg.SampleInterval < 100*time.Millisecond {
		add("SampleInterval", "%s is too short; sample at most every 100ms", cfg.SampleInterval)
	}
	if cfg.HistorySamples == 0 {
		cfg.HistorySamples = DefaultHistorySamples
	}
	if cfg.HistorySamples < 1 || cfg.HistorySamples > maxHistorySamples {
		add("HistorySamples", "%d is out of range: want 1 to %d", cfg.HistorySamples, maxHistorySamples)
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	if cfg.MaxFiles < 1 {
		add("MaxFiles", "%d is out of range: want at least 1", cfg.MaxFiles)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if !filepath.IsAbs(cfg.ProcRoot) {
		add("ProcRoot", "%q is not an absolute path", cfg.ProcRoot)
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			add("Hostname", "not set, and the host's name cannot be read: %v", err)
		}
		cfg.Hostname = h
	}
	if len(problems) > 0 {
		return nil, domain.Invalid("invalid snapagent configuration", problems)
	}

	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{
		cfg:        cfg,
		roots:      roots,
		log:        logger,
		tokenSum:   sha256.Sum256([]byte(cfg.Token)),
		compare:    subtle.ConstantTimeCompare,
		cache:      newDigestCache(cfg.MaxFiles),
		history:    newHistory(cfg.HistorySamples, maxServices, time.Duration(cfg.HistorySamples)*cfg.SampleInterval),
		captures:   make(chan struct{}, maxConcurrentCaptures),
		racyWindow: time.Second,
		cpuWindow:  250 * time.Millisecond,
	}
	a.cgroupRoot = a.findCgroupRoot()
	return a, nil
}

// validateRoot checks a configured root and resolves its symlinks.
func validateRoot(given string) (root, error) {
	if given == "" {
		return root{}, fmt.Errorf("empty path")
	}
	if strings.IndexByte(given, 0) >= 0 {
		return root{}, fmt.Errorf("%q contains a NUL byte", given)
	}
	if !filepath.IsAbs(given) {
		return root{}, fmt.Errorf("%q is not an absolute path", given)
	}
	clean := filepath.Clean(given)
	real, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return root{}, fmt.Errorf("%s cannot be resolved: %v", clean, pathErr(err))
	}
	info, err := os.Stat(real)
	if err != nil {
		return root{}, fmt.Errorf("%s: %v", clean, pathErr(err))
	}
	if !info.IsDir() {
		return root{}, fmt.Errorf("%s is not a directory", clean)
	}
	if isPseudoPath(clean) || isPseudoPath(real) {
		return root{}, fmt.Errorf("%s is in /proc, /sys or /dev, which the agent never serves", clean)
	}
	return root{given: clean, real: real}, nil
}

// pathErr drops the operation and path an *os.PathError repeats.
func pathErr(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}
