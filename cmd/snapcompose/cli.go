package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/hosts"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/live"
	"github.com/snapcompose/snapcompose/internal/manifest"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
	"github.com/snapcompose/snapcompose/internal/planview"
	"github.com/snapcompose/snapcompose/internal/quantity"
	"github.com/snapcompose/snapcompose/internal/store"
)

// Exit codes, as DESIGN.md fixes them.
const (
	exitOK         = 0
	exitCannotMake = 1 // the composition cannot be made: infeasible, unreachable, internal
	exitInvalid    = 2 // invalid input: manifest, catalog, hosts file, flags
)

// exitCodes maps error codes to exit codes.
var exitCodes = map[string]int{
	domain.EINVALID:     exitInvalid,
	domain.ENOTFOUND:    exitInvalid,
	domain.EINFEASIBLE:  exitCannotMake,
	domain.EUNAVAILABLE: exitCannotMake,
	domain.EPARTIAL:     exitCannotMake, // the good part was applied; say that something was not
	domain.ECONFLICT:    exitCannotMake,
	domain.EINTERNAL:    exitCannotMake,
}

// Main is the snapcompose program with its standard streams, so tests run it
// in-process exactly as a user would.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads configuration (DATABASE_URL, ...); nil means os.Getenv.
	Getenv func(string) string
	// OnListen, when set, is told the address serve listens on.
	OnListen func(addr string)
}

const usage = `snapcompose composes environments from templates and live hosts.

Usage:
  snapcompose plan -f MANIFEST [--catalog DIR] [--hosts FILE] [--output text|json] [--strategy S] [--model FILE] [--ambiguous-margin X]
  snapcompose compose -f MANIFEST --out DIR [plan's flags] [--live-image IMAGE]
  snapcompose serve [--addr HOST:PORT] [--data-dir DIR] [--catalog DIR] [--hosts FILE] [--tokens FILE] [--model FILE] [--model-poll D] [--retrain-every D]
                    [--pool NAME] [--output-dir DIR] [--workers N] [--job-timeout D] [--job-rescue-after D] [--worker-id ID] [--live-image IMAGE]
  snapcompose migrate up|down|version
  snapcompose db start|stop [--data-dir DIR] [--ephemeral]
  snapcompose import usage --format bitbrains [--host NAME] DIR_OR_FILE...
  snapcompose train [--simulate N] [--seed S] [--pods FILE] [--from T] [--to T] [--promote] [--out DIR] [--workers N]
  snapcompose model list | model promote VERSION | model export VERSION|promoted --out DIR
  snapcompose eval allocation --usage DIR [--seed N | --seeds N,N,...] [--group-size N] [--output text|json]
  snapcompose eval agent [--model FILE] [--card FILE] [--limit N] [--output text|json]
  snapcompose pool set NAME --cpu Q --memory Q --disk Q | pool import NAME --openb-nodes FILE [--nodes N] | pool show NAME
  snapcompose version

Run "snapcompose COMMAND -h" for a command's flags.
Exit codes: 0 success, 1 the composition cannot be made, 2 invalid input.
`

// Run runs the command args name and returns the exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return exitInvalid
	}
	var err error
	switch args[0] {
	case "plan", "compose":
		err = m.plan(ctx, args[0], args[1:])
	case "serve":
		err = m.serve(ctx, args[1:])
	case "migrate":
		err = m.migrate(ctx, args[1:])
	case "db":
		err = m.db(ctx, args[1:])
	case "import":
		err = m.importCmd(ctx, args[1:])
	case "eval":
		err = m.evalCmd(ctx, args[1:])
	case "train":
		err = m.trainCmd(ctx, args[1:])
	case "model":
		err = m.modelCmd(ctx, args[1:])
	case "pool":
		err = m.poolCmd(ctx, args[1:])
	case "version":
		fmt.Fprintln(m.Stdout, "snapcompose", version())
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
	default:
		err = domain.Errorf(domain.EINVALID, "unknown command %q: want plan, compose, serve, migrate, db, import, eval, train, model, pool or version", args[0])
	}
	return m.fail(err)
}

// fail reports err on stderr and returns its exit code.
func (m *Main) fail(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := domain.ErrorCode(err)
	msg := domain.ErrorMessage(err)
	if code == domain.EINTERNAL {
		msg = "internal error: " + err.Error()
	}
	fmt.Fprintln(m.Stderr, "snapcompose: "+msg)
	if c, ok := exitCodes[code]; ok {
		return c
	}
	return exitCannotMake
}

func (m *Main) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// parseFlags turns flag errors into EINVALID, naming the flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return domain.Errorf(domain.EINVALID, "%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return domain.Errorf(domain.EINVALID, "%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// plan composes a manifest and prints the plan; compose (withOut) also
// instantiates it into --out.
func (m *Main) plan(ctx context.Context, name string, args []string) error {
	fs := m.flags(name)
	var file, catalogDir, hostsFile, output, strategy, out, liveImage string
	withOut := name == "compose"
	if withOut {
		fs.StringVar(&out, "out", "", "output `dir`ectory for the environment: compose.yaml, .env, plan.json and rootfs/ (replaced whole)")
		fs.StringVar(&liveImage, "live-image", instantiate.DefaultLiveImage, "`image` live services run their captured command in")
	}
	fs.StringVar(&file, "f", "", "manifest `file` (JSON), or - for standard input")
	fs.StringVar(&file, "file", "", "same as -f")
	fs.StringVar(&catalogDir, "catalog", "", "template catalog `dir`ectory")
	fs.StringVar(&hostsFile, "hosts", "", "hosts `file` (YAML) mapping the manifest's live hosts to their snapagents")
	fs.StringVar(&output, "output", "text", "output `format`: text or json")
	fs.StringVar(&strategy, "strategy", "", "override the manifest's conflict_resolution (FIRST_WIN, LAST_WIN, PRIORITY, AI_AGENT)")
	var af agentFlags
	m.addAgentFlags(fs, &af)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := af.check(); err != nil {
		return err
	}
	if output != "text" && output != "json" {
		return domain.Errorf(domain.EINVALID, "--output: unknown format %q: want text or json", output)
	}
	if file == "" {
		return domain.Errorf(domain.EINVALID, "-f: a manifest file is required")
	}
	if withOut && out == "" {
		return domain.Errorf(domain.EINVALID, "--out: an output directory is required")
	}
	man, err := m.readManifest(file)
	if err != nil {
		return err
	}
	if strategy != "" {
		man.ConflictResolution = domain.Strategy(strategy)
		if _, err := agent.New(man.ConflictResolution); err != nil && man.ConflictResolution != domain.AIAgent {
			return domain.Errorf(domain.EINVALID, "--strategy: unknown strategy %q: want FIRST_WIN, LAST_WIN, PRIORITY or AI_AGENT", strategy)
		}
	}
	orch, blobs, cleanup, err := m.orchestrator(ctx, file, man, catalogDir, hostsFile, af)
	if err != nil {
		return err
	}
	defer cleanup()
	rec, planErr := orch.Compose(ctx, man)
	if rec != nil {
		plan := rec.Plan
		write := planview.WriteText
		if output == "json" {
			write = planview.WriteJSON
		}
		if err := write(m.Stdout, plan); err != nil {
			return err
		}
	}
	if planErr != nil || !withOut {
		return planErr
	}
	res, err := instantiate.Write(ctx, rec, out, instantiate.Options{Blobs: blobs, LiveImage: liveImage})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "instantiated into %s: %d services, %d files (%s); run it with: docker compose --project-directory %s up\n",
		res.Dir, res.Services, res.Files, quantity.FormatBytes(res.Bytes), res.Dir)
	return nil
}

// orchestrator wires up the sources and resolvers man needs from the
// command's flags. cleanup releases what it opened.
func (m *Main) orchestrator(ctx context.Context, file string, man *domain.Manifest, catalogDir, hostsFile string, af agentFlags) (_ *orchestrator.Orchestrator, _ blobSource, cleanup func(), err error) {
	var closers []func()
	var blobs blobSource
	defer func() {
		if err != nil {
			for _, c := range closers {
				c()
			}
		}
	}()
	orch := orchestrator.New()
	for _, s := range man.Sources {
		switch s.Type {
		case domain.LiveSource:
			if hostsFile == "" {
				return nil, blobSource{}, nil, domain.Errorf(domain.EINVALID, "--hosts: %s: /sources/%d: live source %s needs a hosts file (--hosts FILE) that maps host %q to its snapagent",
					file, s.Index, s.Ref(), s.Host)
			}
		case domain.TemplateSource:
			if catalogDir == "" {
				return nil, blobSource{}, nil, domain.Errorf(domain.EINVALID, "--catalog: %s uses template sources, so a catalog directory is required", file)
			}
		}
	}
	if catalogDir != "" {
		cat, err := catalog.Open(catalogDir)
		if err != nil {
			return nil, blobSource{}, nil, err
		}
		orch.WithSource(domain.TemplateSource, cat)
		blobs.catalog = cat
	}
	if hostsFile != "" {
		hf, err := hosts.Load(hostsFile)
		if err != nil {
			return nil, blobSource{}, nil, err
		}
		blobs.live = live.New(hf, live.WithGetenv(m.getenv))
		orch.WithSource(domain.LiveSource, blobs.live)
	}
	for _, s := range []domain.Strategy{domain.FirstWin, domain.LastWin, domain.Priority} {
		r, _ := agent.New(s)
		orch.WithResolver(r)
	}
	if man.ConflictResolution == domain.AIAgent {
		// The sources' track record comes from the history in DATABASE_URL
		// when it is set; without it every source is scored as new.
		var history func(context.Context) (map[domain.SourceRef]features.SourceHistory, error)
		if url := m.getenv("DATABASE_URL"); url != "" {
			st, err := store.Open(ctx, url)
			if err != nil {
				return nil, blobSource{}, nil, err
			}
			closers = append(closers, st.Close)
			history = func(ctx context.Context) (map[domain.SourceRef]features.SourceHistory, error) {
				return trackRecord(ctx, st)
			}
		}
		learned, scorer, err := m.loadAgent(af, history)
		if err != nil {
			return nil, blobSource{}, nil, err
		}
		closers = append(closers, func() { scorer.Close() })
		orch.WithResolver(learned)
	}
	return orch, blobs, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

func (m *Main) readManifest(file string) (*domain.Manifest, error) {
	var r io.Reader = m.Stdin
	name := "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "-f: cannot read manifest: %v", pathError(err))
		}
		defer f.Close()
		r, name = f, file
	}
	man, err := manifest.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return man, nil
}

// pathError drops Go's "open " prefix from file errors.
func pathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + strings.TrimPrefix(pe.Err.Error(), "open ")
	}
	return err.Error()
}
