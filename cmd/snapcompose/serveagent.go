package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/live"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
	"github.com/snapcompose/snapcompose/internal/store"
)

// historyTTL is how long the server reuses the sources' track record
// before reading it again.
const historyTTL = time.Minute

// servingAgent is AI_AGENT in the server: the promoted model of the
// registry (else the model file), swapped in place when another is
// promoted (by the retrainer or `snapcompose model promote`), and the
// sources' track record read from the history. A model that cannot be
// used leaves AI_AGENT unavailable with the reason; it never falls back.
type servingAgent struct {
	st     *store.Store
	flags  agentFlags
	m      *Main
	dir    string // where promoted models are written to be loaded
	logger *slog.Logger

	syncMu   sync.Mutex // one sync at a time: the poller's and the API's
	mu       sync.Mutex
	reloader *agent.Reloader
	learned  *agent.Learned
	status   httpapi.AgentStatus
	refused  string // the promoted version last refused, not retried

	histMu sync.Mutex
	hist   map[domain.SourceRef]features.SourceHistory
	histAt time.Time
}

func (m *Main) startServingAgent(ctx context.Context, st *store.Store, f agentFlags, dataDir string, poll time.Duration, logger *slog.Logger) *servingAgent {
	a := &servingAgent{st: st, flags: f, m: m, dir: filepath.Join(dataDir, "models"), logger: logger}
	a.sync(ctx)
	if poll > 0 {
		go func() {
			t := time.NewTicker(poll)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					a.sync(ctx)
				}
			}
		}()
	}
	return a
}

// sync loads the promoted model if it is not the one serving (or the model
// file when none is promoted and none serves yet).
func (a *servingAgent) sync(ctx context.Context) {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	a.mu.Lock()
	refused, serving, serves := a.refused, a.status.ModelVersion, a.reloader != nil
	tried := serves || a.status.Error != ""
	a.mu.Unlock()
	mv, err := a.st.PromotedModel(ctx)
	switch {
	case err == nil && (mv.Version == refused || serves && mv.Version == serving):
		return // serving it, or said once why not; a new promotion is tried
	case err == nil && mv.FeatureSchema != features.SchemaHash():
		a.fail(fmt.Errorf("promoted model %s extracts feature schema %s, this build %s: promote a model trained by this build", mv.Version, mv.FeatureSchema, features.SchemaHash()), mv.Version)
	case err == nil:
		// Named by digest: a version is any text, a digest a safe name.
		path := filepath.Join(a.dir, strings.TrimPrefix(mv.ONNXDigest, "sha256:")+".onnx")
		if err := os.MkdirAll(a.dir, 0o755); err != nil {
			a.fail(err, mv.Version)
			return
		}
		if err := os.WriteFile(path, mv.ONNX, 0o644); err != nil {
			a.fail(err, mv.Version)
			return
		}
		a.load(path, mv.Version)
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		if !tried { // none promoted: the model file, once
			path := a.m.modelPath(a.flags)
			a.load(path, "file:"+path)
		}
	default:
		a.logger.Error("AI_AGENT: reading the promoted model", "error", domain.ErrorMessage(err))
	}
}

func (a *servingAgent) load(path, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reloader != nil {
		if err := a.reloader.Reload(path); err != nil {
			a.refused = version
			a.logger.Error("AI_AGENT: the new model is refused; the current one keeps serving", "model", version, "error", err.Error())
			return
		}
	} else {
		f := a.flags
		f.model = path
		learned, r, err := a.m.loadAgent(f, a.history)
		if err != nil {
			a.refused = version
			a.status = httpapi.AgentStatus{ModelVersion: version, Error: domain.ErrorMessage(err)}
			a.logger.Error("AI_AGENT is unavailable", "model", version, "error", domain.ErrorMessage(err))
			return
		}
		a.reloader, a.learned = r, learned
	}
	a.status = httpapi.AgentStatus{ModelVersion: version, FeatureSchema: features.SchemaHash(), LoadedAt: time.Now().UTC()}
	a.logger.Info("AI_AGENT model loaded", "model", version, "path", path)
}

func (a *servingAgent) fail(err error, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refused = version
	if a.reloader != nil {
		a.logger.Error("AI_AGENT: the promoted model is refused; the current one keeps serving", "model", version, "error", err.Error())
		return
	}
	a.status = httpapi.AgentStatus{ModelVersion: version, Error: err.Error()}
	a.logger.Error("AI_AGENT is unavailable", "model", version, "error", err.Error())
}

// Status implements httpapi.Agent.
func (a *servingAgent) Status() httpapi.AgentStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Resolver returns the AI_AGENT resolver, or the reason it is unavailable.
func (a *servingAgent) Resolver() (domain.Resolver, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.learned == nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "AI_AGENT is unavailable: %s", a.status.Error)
	}
	return a.learned, nil
}

// history is the sources' track record, read at most once a historyTTL.
func (a *servingAgent) history(ctx context.Context) (map[domain.SourceRef]features.SourceHistory, error) {
	a.histMu.Lock()
	defer a.histMu.Unlock()
	if a.hist != nil && time.Since(a.histAt) < historyTTL {
		return a.hist, nil
	}
	h, err := trackRecord(ctx, a.st)
	if err != nil {
		return nil, err
	}
	a.hist, a.histAt = h, time.Now()
	return h, nil
}

// trackRecord reads the sources' track record the features use from the
// history in st.
func trackRecord(ctx context.Context, st *store.Store) (map[domain.SourceRef]features.SourceHistory, error) {
	raw, err := st.SourceHistory(ctx)
	if err != nil {
		return nil, err
	}
	h := make(map[domain.SourceRef]features.SourceHistory, len(raw))
	for ref, c := range raw {
		h[ref] = features.SourceHistory{Compositions: c[0], Healthy: c[1]}
	}
	return h, nil
}

func (a *servingAgent) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reloader != nil {
		a.reloader.Close()
	}
}

// serverPlanner plans for the API with the server's catalog and hosts
// file, the deterministic strategies and the serving AI_AGENT.
type serverPlanner struct {
	templates domain.SnapshotSource // the catalog directory, else the catalog in Postgres
	live      *live.Source          // nil: no live sources
	ai        *servingAgent
	// observeAllocation hears each run of the allocator; nil: nobody.
	observeAllocation func(method string, d time.Duration)
}

func (p *serverPlanner) Plan(ctx context.Context, m *domain.Manifest) (*domain.Plan, error) {
	rec, err := p.Compose(ctx, m)
	if rec == nil {
		return nil, err
	}
	return rec.Plan, err
}

// Compose implements jobs.Composer. The record names the registry's model
// that settled the conflicts, when one did.
func (p *serverPlanner) Compose(ctx context.Context, m *domain.Manifest) (*domain.PlanRecord, error) {
	o, err := p.orchestrator(m)
	if err != nil {
		return nil, err
	}
	version := ""
	if m.ConflictResolution == domain.AIAgent {
		version = p.ai.Status().ModelVersion
	}
	rec, err := o.Compose(ctx, m)
	if rec != nil && version != "" {
		rec.Plan.ModelVersion = version // what decided it, in the plan itself
		if !strings.HasPrefix(version, "file:") {
			rec.ModelVersion = version // a registry version: the history points at it
		}
	}
	return rec, err
}

func (p *serverPlanner) orchestrator(m *domain.Manifest) (*orchestrator.Orchestrator, error) {
	o := orchestrator.New().WithAllocationObserver(p.observeAllocation)
	if p.templates != nil {
		o.WithSource(domain.TemplateSource, p.templates)
	}
	if p.live != nil {
		o.WithSource(domain.LiveSource, p.live)
	}
	for _, s := range []domain.Strategy{domain.FirstWin, domain.LastWin, domain.Priority} {
		r, _ := agent.New(s)
		o.WithResolver(r)
	}
	if m.ConflictResolution == domain.AIAgent {
		r, err := p.ai.Resolver()
		if err != nil {
			return nil, err
		}
		o.WithResolver(r)
	}
	return o, nil
}
