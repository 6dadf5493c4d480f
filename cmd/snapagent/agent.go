package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/snapagent"
)

// Exit codes, as snapcompose's.
const (
	exitOK      = 0
	exitFailed  = 1 // the agent could not run or stopped on an error
	exitInvalid = 2 // invalid flags or configuration
)

// tokenEnv is the environment variable the token is read from when no
// --token-file is given.
const tokenEnv = "SNAPAGENT_TOKEN"

// Main is the snapagent program with its output streams, so tests run it
// in-process as a user would.
type Main struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// OnListen, when set, is told the address the agent listens on.
	OnListen func(addr string)
}

const usageText = `snapagent serves captures of directories on this host to snapcompose.

Usage:
  snapagent --root DIR [--root DIR ...] [--token-file FILE] [flags]

The bearer token clients must send comes from --token-file, or else from
$SNAPAGENT_TOKEN; it must be at least 16 bytes long.
Exit codes: 0 stopped by a signal, 1 failed, 2 invalid flags.

Flags:
`

// Run runs the agent until ctx ends and returns the exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	err := m.run(ctx, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := domain.ErrorCode(err)
	msg := domain.ErrorMessage(err)
	if code == domain.EINTERNAL {
		msg = err.Error()
	}
	fmt.Fprintln(m.Stderr, "snapagent: "+msg)
	if code == domain.EINVALID || code == domain.ENOTFOUND {
		return exitInvalid
	}
	return exitFailed
}

// fieldFlags names the flag behind each snapagent.Config field, for errors.
var fieldFlags = map[string]string{
	"Roots":          "--root",
	"Token":          "--token-file (or " + tokenEnv + ")",
	"Services":       "--service",
	"SampleInterval": "--sample-interval",
	"HistorySamples": "--history",
	"MaxFiles":       "--max-files",
	"Hostname":       "--hostname",
}

func (m *Main) run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("snapagent", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	var cfg snapagent.Config
	listen := fs.String("listen", "127.0.0.1:7070", "`address` to listen on")
	fs.Func("root", "a `directory` to serve; repeat for several", func(s string) error {
		cfg.Roots = append(cfg.Roots, s)
		return nil
	})
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token (default $"+tokenEnv+")")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file` (PEM); serve HTTPS with --tls-key")
	tlsKey := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	fs.Func("service", "`NAME=GLOB`: processes whose executable matches GLOB form service NAME in every capture;\nNAME=cmdline:TEXT matches TEXT in the command line instead; repeat for several", func(s string) error {
		match, err := parseService(s)
		cfg.Services = append(cfg.Services, match)
		return err
	})
	fs.DurationVar(&cfg.SampleInterval, "sample-interval", snapagent.DefaultSampleInterval, "how often to sample the `interval` processes' usage")
	fs.IntVar(&cfg.HistorySamples, "history", snapagent.DefaultHistorySamples, "usage `samples` kept per service")
	fs.IntVar(&cfg.MaxFiles, "max-files", snapagent.DefaultMaxFiles, "most `files` in one capture, and digests remembered")
	fs.StringVar(&cfg.Hostname, "hostname", "", "`name` reported in captures (default the host's name)")
	reportTo := fs.String("report-to", "", "snapcompose server `URL` to push the watched services' usage to, as the monitoring of --report-composition")
	reportComposition := fs.String("report-composition", "", "the composition `id` whose services this host runs")
	reportTokenFile := fs.String("report-token-file", "", "`file` holding a composer token for --report-to (default $SNAPAGENT_REPORT_TOKEN)")
	reportEvery := fs.Duration("report-every", time.Minute, "push new usage samples every `interval`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return domain.Errorf(domain.EINVALID, "%v", err)
	}
	if fs.NArg() > 0 {
		return domain.Errorf(domain.EINVALID, "unexpected argument %q: directories are given with --root", fs.Arg(0))
	}

	logger := slog.New(slog.NewJSONHandler(m.Stderr, nil))
	token, err := m.token(*tokenFile, logger)
	if err != nil {
		return err
	}
	cfg.Token = token
	cfg.Logger = logger
	var report *snapagent.ReportConfig
	if *reportTo != "" || *reportComposition != "" {
		if *reportTo == "" || *reportComposition == "" {
			return domain.Errorf(domain.EINVALID, "--report-to and --report-composition go together: give both or neither")
		}
		if *reportEvery <= 0 {
			return domain.Errorf(domain.EINVALID, "--report-every: %s: want a positive interval such as 1m", *reportEvery)
		}
		rt, err := m.reportToken(*reportTokenFile)
		if err != nil {
			return err
		}
		report = &snapagent.ReportConfig{URL: *reportTo, Token: rt, Composition: *reportComposition, Every: *reportEvery}
	}
	agent, err := snapagent.New(cfg)
	if err != nil {
		return renameFields(err)
	}
	var tlsConfig *tls.Config
	switch {
	case (*tlsCert == "") != (*tlsKey == ""):
		return domain.Errorf(domain.EINVALID, "--tls-cert and --tls-key go together: give both or neither")
	case *tlsCert != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return domain.Errorf(domain.EINVALID, "--tls-cert, --tls-key: %v", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "--listen: cannot listen on %s: %v", *listen, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	} else if host, _, _ := net.SplitHostPort(*listen); !isLoopback(host) {
		logger.Warn("serving plain HTTP beyond loopback: the token and captures cross the network unencrypted; use --tls-cert and --tls-key")
	}
	srv := &http.Server{
		Handler:           agent.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// No WriteTimeout: a capture of a large tree streams for as long as
		// the walk takes.
	}
	logger.Info("serving", "addr", ln.Addr().String(), "tls", tlsConfig != nil, "roots", cfg.Roots,
		"sample_interval", cfg.SampleInterval.String(), "history", cfg.HistorySamples)
	if m.OnListen != nil {
		m.OnListen(ln.Addr().String())
	}

	samplerCtx, stopSampler := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		if err := agent.Run(samplerCtx); err != nil {
			logger.Error("usage sampler stopped", "error", err.Error())
		}
	})
	if report != nil {
		sampler.Go(func() {
			if err := agent.Report(samplerCtx, *report); err != nil {
				logger.Error("usage reporting stopped", "error", err.Error())
			}
		})
		logger.Info("reporting usage", "to", *reportTo, "composition", *reportComposition, "every", reportEvery.String())
	}
	defer func() {
		stopSampler()
		sampler.Wait()
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("captures still running at shutdown were cut off", "error", err.Error())
		srv.Close()
	}
	logger.Info("stopped")
	return nil
}

// reportToken reads the token usage reports are sent with.
func (m *Main) reportToken(file string) (string, error) {
	if file == "" {
		getenv := m.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if t := strings.TrimSpace(getenv("SNAPAGENT_REPORT_TOKEN")); t != "" {
			return t, nil
		}
		return "", domain.Errorf(domain.EINVALID, "--report-token-file: a composer token for --report-to is needed (or $SNAPAGENT_REPORT_TOKEN)")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", domain.Errorf(domain.EINVALID, "--report-token-file: %v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", domain.Errorf(domain.EINVALID, "--report-token-file: %s is empty", file)
	}
	return t, nil
}

// token reads the bearer token from file, or from the environment.
func (m *Main) token(file string, logger *slog.Logger) (string, error) {
	if file == "" {
		getenv := m.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		token := strings.TrimSpace(getenv(tokenEnv))
		if token == "" {
			return "", domain.Errorf(domain.EINVALID, "a bearer token is required: give --token-file FILE or set %s", tokenEnv)
		}
		return token, nil
	}
	info, err := os.Stat(file)
	if err != nil {
		return "", domain.Errorf(domain.EINVALID, "--token-file: %v", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		logger.Warn("the token file can be read by other users; chmod 600 it", "file", file, "mode", info.Mode().Perm().String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", domain.Errorf(domain.EINVALID, "--token-file: %v", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", domain.Errorf(domain.EINVALID, "--token-file: %s is empty", file)
	}
	return token, nil
}

// parseService reads a --service value: NAME=GLOB or NAME=cmdline:TEXT.
func parseService(s string) (snapagent.ServiceMatch, error) {
	name, match, ok := strings.Cut(s, "=")
	if !ok || name == "" || match == "" {
		return snapagent.ServiceMatch{}, fmt.Errorf("want NAME=GLOB or NAME=cmdline:TEXT, not %q", s)
	}
	if text, ok := strings.CutPrefix(match, "cmdline:"); ok {
		return snapagent.ServiceMatch{Name: name, CmdlineContains: text}, nil
	}
	return snapagent.ServiceMatch{Name: name, ExeGlob: match}, nil
}

// renameFields words a configuration error in terms of the flags.
func renameFields(err error) error {
	de, ok := errors.AsType[*domain.Error](err)
	if !ok {
		return err
	}
	problems := make([]domain.Problem, len(de.Problems))
	for i, p := range de.Problems {
		field, rest, _ := strings.Cut(p.Where, "[")
		field, _, _ = strings.Cut(field, ".")
		if flagName, ok := fieldFlags[field]; ok {
			p.Where = flagName
			// Number repeated flags from 1, as a user counts them.
			if index, _, ok := strings.Cut(rest, "]"); ok {
				if n, err := strconv.Atoi(index); err == nil {
					p.Where = fmt.Sprintf("%s #%d", flagName, n+1)
				}
			}
		}
		problems[i] = p
	}
	return domain.Invalid("invalid flags", problems)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
