// Package simulate generates composition history to bootstrap the learned
// agent: no real outcome history exists yet. It builds a pool of recurring
// sources (catalog templates and live hosts) whose services are sized and
// prioritised from the Alibaba OpenB trace, composes random manifests of
// them through the real composer and negotiation (orchestrator.Plan), lets
// a policy settle the conflicts, and draws each composition's outcome from
// a documented ground truth (OK) plus noise.
//
// Everything is deterministic for a seed: composition i of a Simulator is
// the same every time, and so is the history it leaves behind.
package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
)

// Start is the simulated clock's start; composition i happens i×Step later.
var Start = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

// Step is the simulated time between two compositions.
const Step = 10 * time.Minute

// FlipNoise is the probability that an outcome is reported the wrong way
// round (a flaky health check, a misread dashboard).
const FlipNoise = 0.02

// kind of service the pool draws from: its name, host and container port
// (0: none), what it needs, and whether it is usually optional.
type serviceKind struct {
	name      string
	host      int
	container int
	needs     []string
	optional  float64 // probability it is marked optional
}

var serviceKinds = []serviceKind{
	{"db", 5432, 5432, nil, 0.02},
	{"redis", 6379, 6379, nil, 0.05},
	{"queue", 5672, 5672, nil, 0.05},
	{"api", 8080, 8080, []string{"db", "redis"}, 0.02},
	{"web", 8080, 80, []string{"api"}, 0.1},
	{"worker", 0, 0, []string{"db", "queue"}, 0.2},
	{"auth", 9000, 9000, []string{"db"}, 0.05},
	{"admin", 9000, 8000, []string{"api"}, 0.5},
	{"metrics", 9090, 9090, nil, 0.6},
	{"search", 9200, 9200, nil, 0.5},
	{"reporting", 3000, 3000, []string{"db"}, 0.7},
	{"scheduler", 0, 0, []string{"queue"}, 0.3},
	{"cache", 11211, 11211, nil, 0.4},
}

var envNames = []string{"LOG_LEVEL", "APP_ENV", "DATABASE_URL", "REDIS_URL", "FEATURE_FLAGS", "API_TOKEN", "SEED_DATASET", "WORKERS", "S3_BUCKET", "SESSION_SECRET"}

// flagNames are the feature flags FEATURE_FLAGS lists.
var flagNames = []string{"search", "cart", "checkout", "beta-ui", "fast-path"}

var filePaths = []string{"/etc/app/app.conf", "/etc/nginx/conf.d/default.conf", "/srv/data/catalog.csv", "/srv/data/orders.csv", "/var/lib/seed/dump.sql", "/etc/app/features.yaml"}

// pooled is one recurring source: what it contributes and what only the
// ground truth knows of it.
type pooled struct {
	source   domain.Source // Index and Priority are set per composition
	snapshot domain.Snapshot
	// reliability multiplies the chance that whatever this source wins
	// works: a flaky template or host drags its wins down.
	reliability float64
	// hardcoded: clients of the service reach it by its address and port
	// as configured, not through service discovery, so renaming it or
	// moving its port breaks them.
	hardcoded map[string]bool
	// latency marks latency-sensitive services (OpenB QoS LS): dropping
	// one fails whatever needs it.
	latency map[string]bool
}

// Simulator generates compositions from a fixed pool of sources.
type Simulator struct {
	seed uint64
	pool []*pooled
}

// PoolTemplates and PoolHosts size the pool of recurring sources.
const (
	PoolTemplates = 24
	PoolHosts     = 12
)

// New builds the pool of sources from pods, deterministically for seed.
func New(seed uint64, pods []Pod) (*Simulator, error) {
	if len(pods) == 0 {
		return nil, fmt.Errorf("simulate: no pods to size services from")
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &Simulator{seed: seed}
	for i := range PoolTemplates + PoolHosts {
		live := i >= PoolTemplates
		s.pool = append(s.pool, newPooled(rng, pods, i, live))
	}
	return s, nil
}

func newPooled(rng *rand.Rand, pods []Pod, i int, live bool) *pooled {
	p := &pooled{hardcoded: map[string]bool{}, latency: map[string]bool{}, reliability: 1}
	if live {
		p.source = domain.Source{Type: domain.LiveSource, Host: fmt.Sprintf("prod-%02d", i-PoolTemplates), Path: "/srv/app"}
		if rng.Float64() < 0.6 {
			p.source.Tags = append(p.source.Tags, "data")
		}
		if rng.Float64() < 0.3 {
			p.source.Tags = append(p.source.Tags, "logging")
		}
	} else {
		p.source = domain.Source{Type: domain.TemplateSource, ID: fmt.Sprintf("tmpl-%02d", i)}
		for _, t := range []string{"config", "data", "app"} {
			if rng.Float64() < 0.35 {
				p.source.Tags = append(p.source.Tags, t)
			}
		}
	}
	// Services: a few kinds, with what they need.
	chosen := map[string]bool{}
	for n := 2 + rng.IntN(4); len(chosen) < n; {
		k := serviceKinds[rng.IntN(len(serviceKinds))]
		chosen[k.name] = true
		for _, need := range k.needs {
			chosen[need] = true
			for _, kk := range serviceKinds {
				if kk.name == need {
					for _, n2 := range kk.needs {
						chosen[n2] = true
					}
				}
			}
		}
	}
	failed := 0
	for _, k := range serviceKinds {
		if !chosen[k.name] {
			continue
		}
		pod := pods[rng.IntN(len(pods))]
		cpu := min(pod.CPUMillicores, 16000)
		mem := min(pod.MemoryMiB, 64<<10) << 20
		svc := domain.Service{
			Name:      k.name,
			Image:     fmt.Sprintf("registry.example/%s:%d", k.name, 1+rng.IntN(2)),
			DependsOn: slices.Clone(k.needs),
			Volumes:   []string{},
			Requested: domain.Resources{CPUMillicores: cpu, MemoryBytes: mem, DiskBytes: int64(1+rng.IntN(20)) << 30},
			// Latency-sensitive services are never optional.
			Optional: pod.QoS != "LS" && (rng.Float64() < k.optional || (pod.QoS == "BE" && rng.Float64() < 0.2)),
		}
		if svc.DependsOn == nil {
			svc.DependsOn = []string{}
		}
		svc.Minimum = domain.Resources{CPUMillicores: cpu / 2, MemoryBytes: mem / 2, DiskBytes: svc.Requested.DiskBytes}
		if live {
			svc.Image = "exe:/srv/app/bin/" + k.name
			svc.Minimum = svc.Requested
		}
		if k.host != 0 {
			svc.Ports = []domain.Port{{Host: k.host, Container: k.container, Protocol: "tcp"}}
		} else {
			svc.Ports = []domain.Port{}
		}
		svc.Reads = readsOf(k.name)
		svc.LatencySensitive = pod.QoS == "LS"
		svc.Runtime = domain.Digest([]byte(svc.Image))
		svc.Digest = svc.DefinitionDigest()
		p.snapshot.Services = append(p.snapshot.Services, svc)
		// Production services are reached at their configured address and
		// port; templates' clients use service discovery.
		p.hardcoded[k.name] = live
		p.latency[k.name] = pod.QoS == "LS"
		if pod.Phase == "Failed" {
			failed++
		}
	}
	if rng.Float64() < 0.2 || failed > 0 {
		p.reliability = 0.93
	}
	for _, name := range envNames {
		if rng.Float64() < 0.3 {
			value := fmt.Sprintf("%s-v%d", name, rng.IntN(3))
			if name == "FEATURE_FLAGS" {
				// A list: the flags this source's services need on.
				var on []string
				for _, f := range flagNames {
					if rng.Float64() < 0.4 {
						on = append(on, f)
					}
				}
				value = strings.Join(append(on, fmt.Sprintf("build-%d", rng.IntN(3))), ",")
			}
			p.snapshot.Env = append(p.snapshot.Env, domain.EnvVar{Name: name, Value: value})
		}
	}
	for _, path := range filePaths {
		if rng.Float64() < 0.2 {
			p.snapshot.Files = append(p.snapshot.Files, domain.File{Path: path, Digest: domain.Digest([]byte(fmt.Sprintf("%s#%d", path, rng.IntN(3)))), Size: 100 + int64(rng.IntN(10000)), Mode: 0o644})
		}
	}
	p.snapshot.Tags = slices.Clone(p.source.Tags)
	p.snapshot.Volumes = []domain.Volume{}
	p.snapshot.Description = fmt.Sprintf("simulated %s", p.source.Ref())
	return p
}

// World is one simulated composition: its manifest, what each source
// contributes, and the truth behind the outcome.
type World struct {
	Index     int
	Manifest  *domain.Manifest
	Snapshots []*domain.Snapshot
	Now       time.Time
	pooled    []*pooled
	byRef     map[domain.SourceRef]*pooled
	seed      uint64
}

// Name is the manifest name of composition i of a simulation with seed: it
// lets the evaluation find a recorded composition's world again.
func Name(seed uint64, i int) string { return fmt.Sprintf("sim-%d-%06d", seed, i) }

// World returns composition i.
func (s *Simulator) World(i int) *World {
	rng := rand.New(rand.NewPCG(s.seed, uint64(i)+1))
	n := 2 + rng.IntN(2)
	picks := rng.Perm(len(s.pool))[:n]
	w := &World{Index: i, Now: Start.Add(time.Duration(i) * Step), byRef: map[domain.SourceRef]*pooled{}, seed: s.seed}
	m := &domain.Manifest{Name: Name(s.seed, i), ConflictResolution: domain.AIAgent}
	var req domain.Resources
	for idx, pi := range picks {
		p := s.pool[pi]
		src := p.source
		src.Index = idx
		// Priorities: the QoS class of the source's first service, scaled,
		// plus a little of the team's own judgement.
		src.Priority = 2*priorityOf(qosOf(p)) + rng.IntN(3)
		snap := p.snapshot
		snap.Source = src
		snap.Services = slices.Clone(p.snapshot.Services)
		if src.Type == domain.LiveSource {
			age := time.Duration((0.1 + 11.9*rng.Float64()) * float64(time.Hour))
			if rng.Float64() < 0.4 {
				age = time.Duration((30 + 210*rng.Float64()) * float64(time.Hour))
			}
			snap.CapturedAt = w.Now.Add(-age)
		}
		for _, svc := range snap.Services {
			req = req.Add(svc.Requested)
		}
		m.Sources = append(m.Sources, src)
		w.Snapshots = append(w.Snapshots, &snap)
		w.pooled = append(w.pooled, p)
		w.byRef[src.Ref()] = p
	}
	m.ResourceLimits = domain.Resources{
		CPUMillicores: req.CPUMillicores + req.CPUMillicores/5 + 1000,
		MemoryBytes:   req.MemoryBytes + req.MemoryBytes/5 + 1<<30,
		DiskBytes:     req.DiskBytes*2 + 1<<30,
	}
	w.Manifest = m
	return w
}

func qosOf(p *pooled) string {
	for name, ls := range p.latency {
		if ls && slices.ContainsFunc(p.snapshot.Services, func(s domain.Service) bool { return s.Name == name }) {
			return "LS"
		}
	}
	return "BE"
}

// Retrieve serves the world's snapshots, as a SnapshotSource does.
func (w *World) Retrieve(_ context.Context, src domain.Source) (*domain.Snapshot, error) {
	for _, s := range w.Snapshots {
		if s.Source.Ref() == src.Ref() {
			out := *s
			return &out, nil
		}
	}
	return nil, domain.Errorf(domain.ENOTFOUND, "simulated source %s not found", src.Ref())
}

// Age returns how long before the composition src was captured, or 0.
func (w *World) age(ref domain.SourceRef) time.Duration {
	for _, s := range w.Snapshots {
		if s.Source.Ref() == ref && !s.CapturedAt.IsZero() {
			return w.Now.Sub(s.CapturedAt)
		}
	}
	return 0
}

func (w *World) source(ref domain.SourceRef) (domain.Source, bool) {
	for _, s := range w.Manifest.Sources {
		if s.Ref() == ref {
			return s, true
		}
	}
	return domain.Source{}, false
}

// OK is the ground truth: the probability that the environment is fine as
// far as candidate cand of decision d is concerned. A composition is
// healthy with the product of its decisions' OK (then FlipNoise). The rules,
// which a thoughtful engineer would recognise:
//
//   - share (one instance of identical services): 0.995.
//   - rename of a losing service: 0.98, times 0.35 for each renamed service
//     whose clients hard-code its name (production services, mostly).
//   - remap of a losing service's host port: 0.995, but a service whose
//     clients hard-code the port breaks them: times 0.2 when other
//     services depend on it, 0.6 when only outside clients do.
//   - drop: 0.95 per dropped service (0.9 more per service that needed
//     it), but 0.3 when it is latency-sensitive (OpenB QoS LS).
//   - volume rename: 0.995.
//   - merge of a list variable (FEATURE_FLAGS): 0.97, whoever holds it:
//     every source's items are on, and now and then two of them clash.
//   - keep of a variable or file: 0.99 when the winner holds the right
//     value, else 0.25. The right value: for a secret, a template's
//     (production secrets have no place in staging); for data (URLs, DSNs,
//     data files, dumps), a data-tagged live source captured in the last
//     24 hours, else a data-tagged template, else the freshest live
//     capture; for configuration (log levels, modes, flags, /etc), a
//     config-tagged source, else a template (production settings are wrong
//     for staging); otherwise the highest priority.
//   - whatever a source wins is multiplied by its hidden reliability (0.93
//     for a flaky source — one in five, or any whose OpenB pods failed —
//     1 otherwise), which its history reveals.
//
// Compute conflicts (allocate) have OK 1: the simulated limits leave room.
func (w *World) OK(d *domain.Decision, cand int) float64 {
	res := d.Candidates[cand].Resolution
	cf := d.Conflict
	var winner domain.SourceRef
	if res.Winner != nil {
		winner = *res.Winner
	}
	var losers []domain.Claimant
	for _, c := range cf.Claimants {
		if c.Source != winner {
			losers = append(losers, c)
		}
	}
	p := 0.995
	switch res.Action {
	case domain.Allocate:
		return 1
	case domain.Share:
		p = 0.995
	case domain.Rename:
		if cf.Kind == domain.VolumeClaim {
			break
		}
		p = 0.98
		for _, l := range losers {
			if pl := w.byRef[l.Source]; pl != nil && pl.hardcoded[l.Owner] {
				p *= 0.35
			}
		}
	case domain.Remap:
		for _, l := range losers {
			pl := w.byRef[l.Source]
			if pl == nil || !pl.hardcoded[l.Owner] {
				continue
			}
			if svc, ok := d.Context.Service(l.Source, l.Owner); ok && svc.Dependents > 0 {
				p *= 0.2
			} else {
				p *= 0.6
			}
		}
	case domain.Drop:
		p = 1
		for _, ch := range res.Changes {
			if ch.Op != domain.OpDropService {
				continue
			}
			pl := w.byRef[ch.Source]
			bad := pl != nil && pl.latency[ch.Service]
			if svc, ok := d.Context.Service(ch.Source, ch.Service); ok {
				p *= math.Pow(0.9, float64(svc.Dependents))
			}
			if bad {
				p *= 0.3
			} else {
				p *= 0.95
			}
		}
	case domain.Merge:
		// Every source's items are on; now and then two of them clash.
		p = 0.97
	case domain.Keep:
		if cf.Kind == domain.EnvClaim || cf.Kind == domain.FileClaim {
			if winner == w.right(cf) {
				p = 0.99
			} else {
				p = 0.25
			}
		}
	}
	if pl := w.byRef[winner]; pl != nil {
		p *= pl.reliability
	}
	return math.Min(math.Max(p, 0.01), 0.99)
}

// right returns the claimant whose value of an env or file key is right.
func (w *World) right(cf domain.Conflict) domain.SourceRef {
	var srcs []domain.Source
	for _, c := range cf.Claimants {
		if s, ok := w.source(c.Source); ok && !slices.ContainsFunc(srcs, func(x domain.Source) bool { return x.Ref() == s.Ref() }) {
			srcs = append(srcs, s)
		}
	}
	tagged := func(s domain.Source, t string) bool { return slices.Contains(s.Tags, t) }
	first := func(ok func(domain.Source) bool) (domain.SourceRef, bool) {
		best, found := domain.Source{}, false
		for _, s := range srcs {
			if ok(s) && (!found || s.Priority > best.Priority || s.Priority == best.Priority && s.Index < best.Index) {
				best, found = s, true
			}
		}
		return best.Ref(), found
	}
	isTemplate := func(s domain.Source) bool { return s.Type == domain.TemplateSource }
	switch classify(cf) {
	case "secret":
		if r, ok := first(isTemplate); ok {
			return r
		}
	case "data":
		if r, ok := first(func(s domain.Source) bool {
			return s.Type == domain.LiveSource && tagged(s, "data") && w.age(s.Ref()) < 24*time.Hour
		}); ok {
			return r
		}
		if r, ok := first(func(s domain.Source) bool { return isTemplate(s) && tagged(s, "data") }); ok {
			return r
		}
		var fresh domain.SourceRef
		best := time.Duration(math.MaxInt64)
		for _, s := range srcs {
			if a := w.age(s.Ref()); s.Type == domain.LiveSource && a < best {
				fresh, best = s.Ref(), a
			}
		}
		if fresh != "" {
			return fresh
		}
	case "config":
		if r, ok := first(func(s domain.Source) bool { return tagged(s, "config") }); ok {
			return r
		}
		if r, ok := first(isTemplate); ok {
			return r
		}
	}
	r, _ := first(func(domain.Source) bool { return true })
	return r
}

// classify says what an env or file key holds, by the same words the
// features read (a simulated world's names are plain).
func classify(cf domain.Conflict) string {
	data, config, secret := features.KeyClass(cf)
	switch {
	case secret:
		return "secret"
	case data:
		return "data"
	case config:
		return "config"
	}
	return ""
}

// readers names the services that read each simulated variable or file
// (nil: every service): a wrong value breaks those, not every service of
// the sources involved. Services declare what they read (Reads), as a
// Compose service's environment or a process's does.
var readers = map[string][]string{
	"env:LOG_LEVEL":                       nil,
	"env:APP_ENV":                         nil,
	"env:DATABASE_URL":                    {"api", "worker", "auth", "reporting", "admin"},
	"env:REDIS_URL":                       {"api", "worker", "cache"},
	"env:FEATURE_FLAGS":                   {"api", "web", "admin"},
	"env:API_TOKEN":                       {"api", "web", "admin", "worker"},
	"env:SEED_DATASET":                    {"db", "worker", "reporting"},
	"env:WORKERS":                         {"worker", "scheduler", "api"},
	"env:S3_BUCKET":                       {"worker", "reporting", "api"},
	"env:SESSION_SECRET":                  {"auth", "web", "api"},
	"file:/etc/app/app.conf":              {"api", "worker", "admin"},
	"file:/etc/nginx/conf.d/default.conf": {"web"},
	"file:/srv/data/catalog.csv":          {"api", "search", "reporting"},
	"file:/srv/data/orders.csv":           {"api", "worker", "reporting"},
	"file:/var/lib/seed/dump.sql":         {"db"},
	"file:/etc/app/features.yaml":         {"api", "web"},
}

// readsOf returns the keys a service of that name reads, sorted.
func readsOf(name string) []string {
	var out []string
	for key, names := range readers {
		if names == nil || slices.Contains(names, name) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}
