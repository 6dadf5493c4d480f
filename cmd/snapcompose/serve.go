package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/catalog"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/hosts"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/instantiate"
	"github.com/snapcompose/snapcompose/internal/jobs"
	"github.com/snapcompose/snapcompose/internal/live"
	"github.com/snapcompose/snapcompose/internal/localpg"
	"github.com/snapcompose/snapcompose/internal/planview"
	"github.com/snapcompose/snapcompose/internal/quantity"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/internal/ui"
)

// serve runs the HTTP server until ctx ends. Without DATABASE_URL it starts
// a managed Postgres under the data directory, and stops it on the way out.
func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.flags("serve")
	addr := fs.String("addr", "127.0.0.1:8080", "`address` to listen on")
	dataDir := fs.String("data-dir", defaultDataDir, "`directory` for the managed Postgres when DATABASE_URL is not set")
	retrainEvery := fs.Duration("retrain-every", 0, "retrain the model from the history every `interval` (e.g. 24h) in the background; 0 never")
	modelPoll := fs.Duration("model-poll", 30*time.Second, "check the registry for a newly promoted model every `interval` and swap it in; 0 never")
	catalogDir := fs.String("catalog", "", "template catalog `dir`ectory for compositions (none: the catalog in Postgres, PUT /v1/templates/{id})")
	hostsFile := fs.String("hosts", "", "hosts `file` naming each live host's snapagent (none: live sources are refused)")
	tokensFile := fs.String("tokens", "", "bearer tokens `file` (YAML: tokens: [{name, role, sha256}]; default $SNAPCOMPOSE_TOKENS_FILE, else a development admin token under --data-dir)")
	pool := fs.String("pool", "default", "capacity `pool` compositions are provisioned from (made with development capacity if missing; see snapcompose pool)")
	outputDir := fs.String("output-dir", "", "`directory` where compositions are instantiated, one directory each (default DATA-DIR/compositions)")
	workers := fs.Int("workers", 4, "compositions this process carries out at once; 0 only queues them for other processes")
	jobTimeout := fs.Duration("job-timeout", jobs.DefaultJobTimeout, "the longest one attempt at a composition may take")
	rescueAfter := fs.Duration("job-rescue-after", 0, "an attempt running this long is taken for cut off (its process died) and run again (default job-timeout + 1m)")
	rateLimit := fs.Float64("rate-limit", httpapi.DefaultRate, "`requests` a second each token may make on average (bursts of twice as many)")
	workerID := fs.String("worker-id", "", "this process's name among the queue's workers (default HOST-PID)")
	liveImage := fs.String("live-image", instantiate.DefaultLiveImage, "`image` live services run their captured command in")
	var af agentFlags
	m.addAgentFlags(fs, &af)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := af.check(); err != nil {
		return err
	}
	if *workers < 0 {
		return domain.Errorf(domain.EINVALID, "--workers: %d is negative: want 0 or more", *workers)
	}
	if *rescueAfter != 0 && *rescueAfter <= *jobTimeout {
		return domain.Errorf(domain.EINVALID, "--job-rescue-after: %s must exceed --job-timeout %s", *rescueAfter, *jobTimeout)
	}
	if *outputDir == "" {
		*outputDir = filepath.Join(*dataDir, "compositions")
	}
	if abs, err := filepath.Abs(*outputDir); err == nil {
		*outputDir = abs
	}
	if *modelPoll < 0 {
		return domain.Errorf(domain.EINVALID, "--model-poll: %s is negative: want an interval such as 30s, or 0 for never", *modelPoll)
	}
	if *retrainEvery < 0 {
		return domain.Errorf(domain.EINVALID, "--retrain-every: %s is negative: want an interval such as 24h, or 0 for never", *retrainEvery)
	}
	logger := slog.New(slog.NewJSONHandler(m.Stderr, nil))

	url := m.getenv("DATABASE_URL")
	if url == "" {
		dir := filepath.Join(*dataDir, "postgres")
		cluster, err := localpg.Start(ctx, dir, localpg.Options{})
		if err != nil {
			return err
		}
		defer func() {
			if err := cluster.Stop(context.Background()); err != nil {
				logger.Error("stopping managed Postgres", "error", err.Error())
			}
		}()
		logger.Info("managed Postgres", "dir", dir, "port", cluster.Port(), "started", cluster.Started())
		url = cluster.URL()
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := store.Migrate(ctx, st.Pool()); err != nil {
		return err
	}
	logger.Info("database migrated", "schema_version", store.MigrationVersion())
	planner := &serverPlanner{templates: dbTemplates{st}}
	var blobs blobSource
	if *catalogDir != "" {
		cat, err := catalog.Open(*catalogDir)
		if err != nil {
			return err
		}
		planner.templates, blobs.catalog = cat, cat
	}
	if *hostsFile != "" {
		hf, err := hosts.Load(*hostsFile)
		if err != nil {
			return err
		}
		planner.live = live.New(hf, live.WithGetenv(m.getenv))
		blobs.live = planner.live
	}
	if err := ensurePool(ctx, st, *pool, logger); err != nil {
		return err
	}
	ai := m.startServingAgent(ctx, st, af, *dataDir, *modelPoll, logger)
	defer ai.close()
	planner.ai = ai
	tokens, err := m.serverTokens(*tokensFile, *dataDir, logger)
	if err != nil {
		return err
	}
	if *rateLimit <= 0 {
		return domain.Errorf(domain.EINVALID, "--rate-limit: %g: want a positive number of requests a second", *rateLimit)
	}
	tokens.Rate, tokens.Burst = *rateLimit, 2**rateLimit
	if *retrainEvery > 0 {
		r := startRetrainer(ctx, st, *retrainEvery, logger)
		defer r.stop()
		logger.Info("retraining scheduled", "every", retrainEvery.String())
	}

	pm := newPlanMetrics()
	planner.observeAllocation = pm.allocation
	host, _ := os.Hostname()
	runner := &jobs.Runner{
		Store: st, Composer: measuredComposer{planner, pm}, Features: recordFeatures(ai.history),
		Pool: *pool, OutputDir: *outputDir, Blobs: blobs, LiveImage: *liveImage,
		PlanJSON: func(p *domain.Plan) ([]byte, error) {
			var b bytes.Buffer
			err := planview.WriteJSON(&b, p)
			return b.Bytes(), err
		},
		Observe: pm.stage, Logger: logger,
	}
	queue, err := jobs.New(st.Pool(), st, runner, jobs.Config{
		Workers: *workers, JobTimeout: *jobTimeout, RescueAfter: *rescueAfter,
		ID: cmp.Or(*workerID, fmt.Sprintf("%s-%d", host, os.Getpid())), Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "--addr: cannot listen on %s: %v", *addr, err)
	}
	if err := queue.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	defer func() {
		// Running compositions get a while to finish; the rest run again
		// elsewhere (or here, after a restart).
		stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := queue.Stop(stopCtx); err != nil {
			logger.Error("stopping the job queue", "error", err.Error())
		}
	}()
	logger.Info("job queue", "workers", *workers, "pool", *pool, "output_dir", *outputDir)
	dashboard, err := ui.New(st, func(token string) (string, bool) { return tokens.Allows(token, httpapi.Analyst) }, logger)
	if err != nil {
		return err
	}
	models := &serverModels{st: st, agent: ai, base: ctx}
	defer models.wait(30 * time.Second) // a training run ends with ctx
	comps := serverCompositions{queue, st}
	api := httpapi.New(httpapi.Config{Ready: st, Agent: ai, Planner: measured{planner, pm}, Templates: dbTemplates{st},
		Compositions: comps, Monitoring: comps, Models: models, History: st, UI: dashboard, Tokens: tokens, Logger: logger})
	if err := pm.register(api); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	logger.Info("serving", "addr", ln.Addr().String())
	if m.OnListen != nil {
		m.OnListen(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Development capacity for a pool the server makes because it is missing.
var devPoolCapacity = domain.Resources{CPUMillicores: 64_000, MemoryBytes: 256 << 30, DiskBytes: 4_000_000_000_000}

// ensurePool makes pool with development capacity if it does not exist,
// and says so: real capacity is set with snapcompose pool set|import.
func ensurePool(ctx context.Context, st *store.Store, pool string, logger *slog.Logger) error {
	_, err := st.PoolUsage(ctx, pool)
	if domain.ErrorCode(err) != domain.ENOTFOUND {
		return err
	}
	if err := st.UpsertPool(ctx, pool, devPoolCapacity); err != nil {
		return fmt.Errorf("--pool: %w", err)
	}
	logger.Warn("capacity pool did not exist: made it with development capacity; set the real one with snapcompose pool set|import",
		"pool", pool, "cpu", quantity.FormatCPU(devPoolCapacity.CPUMillicores), "memory", quantity.FormatBytes(devPoolCapacity.MemoryBytes),
		"disk", quantity.FormatBytes(devPoolCapacity.DiskBytes))
	return nil
}

// devTokenFile is where, without a tokens file, the server keeps the
// development token (an admin), under its data directory.
const devTokenFile = "dev-token"

// serverTokens loads the tokens file (--tokens, else
// SNAPCOMPOSE_TOKENS_FILE); without one, it accepts a development admin
// token kept in DATADIR/dev-token (mode 0600, made on first use), and logs
// where it is — never the token.
func (m *Main) serverTokens(file, dataDir string, logger *slog.Logger) (*httpapi.Tokens, error) {
	if file == "" {
		file = m.getenv("SNAPCOMPOSE_TOKENS_FILE")
	}
	if file != "" {
		t, err := httpapi.LoadTokens(file)
		if err != nil {
			return nil, fmt.Errorf("--tokens: %w", err)
		}
		return t, nil
	}
	path := filepath.Join(dataDir, devTokenFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		raw = []byte(hex.EncodeToString(b) + "\n")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, domain.Errorf(domain.EINVALID, "--data-dir: %v", err)
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return nil, domain.Errorf(domain.EINVALID, "--data-dir: %v", err)
		}
	} else if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "--data-dir: %v", err)
	}
	token := strings.TrimSpace(string(raw))
	logger.Info("no tokens file: a development admin token is accepted; send it as Authorization: Bearer $(cat FILE)", "file", path)
	return httpapi.NewTokens(httpapi.Token{Name: "development", Role: httpapi.Admin, SHA256: httpapi.HashToken(token)})
}
