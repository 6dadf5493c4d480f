// Package features is the only feature extraction of snapcompose: the
// vector that describes one candidate resolution of one conflict in the
// context of its composition. Training (training/) and serving (the
// AI_AGENT strategy) both call Extract, so a model sees at serving time
// exactly what it was trained on.
//
// The layout is fixed and versioned: Names lists the features in order and
// SchemaHash digests Version and Names. A model records the hash it was
// trained on, and serving refuses a model whose hash differs. Change a
// feature's meaning or order and Version must change with it.
//
// A vector depends only on the conflict (kind, claimants), the candidate's
// action and winner, the manifest's sources and limits, the decision's
// Context (the services and their dependents, sizes and capture times) and
// the sources' History — all of which the history in Postgres keeps — so a
// recorded candidate re-extracts to the same vector.
//
// Terms: the winner is the source a candidate keeps (for keep, remap,
// rename, share and drop); the losers are the other claimants. Where there
// are several losers, flags are true when true for any of them, and
// amounts are their maximum. A candidate without a winner has the winner's
// features zero.
package features

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Version is the feature layout's version.
const Version = 2

// The features, in order. Each is documented where it is computed
// (extract); see also the README's table.
const (
	KindService = iota
	KindVolume
	KindPort
	KindEnv
	KindFile
	ActionKeep
	ActionRemap
	ActionRename
	ActionShare
	ActionMerge
	ActionDrop
	Claimants
	WinnerFirst
	WinnerLast
	WinnerTopPriority
	WinnerPriorityMargin
	WinnerPriorityRank
	WinnerLive
	LoserLive
	WinnerTagMatch
	LoserTagMatch
	WinnerDataTag
	LoserDataTag
	WinnerCaptureAge
	LoserCaptureAge
	WinnerSuccessRate
	LoserSuccessRate
	WinnerHistory
	LoserHistory
	WinnerOwnerOptional
	LoserOwnerOptional
	WinnerOwnerDependents
	LoserOwnerDependents
	DroppedServices
	WinnerCPUShare
	WinnerMemoryShare
	LoserCPUShare
	LoserMemoryShare
	PressureCPU
	PressureMemory
	RoundConflicts
	KeyDataLike
	KeyConfigLike
	KeySecret
	WinnerOwnerLatency
	LoserOwnerLatency
	numFeatures
)

// Names names the features, in order.
var Names = [numFeatures]string{
	KindService:           "kind_service",
	KindVolume:            "kind_volume",
	KindPort:              "kind_port",
	KindEnv:               "kind_env",
	KindFile:              "kind_file",
	ActionKeep:            "action_keep",
	ActionRemap:           "action_remap",
	ActionRename:          "action_rename",
	ActionShare:           "action_share",
	ActionMerge:           "action_merge",
	ActionDrop:            "action_drop",
	Claimants:             "claimants_log",
	WinnerFirst:           "winner_listed_first",
	WinnerLast:            "winner_listed_last",
	WinnerTopPriority:     "winner_top_priority",
	WinnerPriorityMargin:  "winner_priority_margin",
	WinnerPriorityRank:    "winner_priority_rank",
	WinnerLive:            "winner_live",
	LoserLive:             "loser_live",
	WinnerTagMatch:        "winner_tag_matches_kind",
	LoserTagMatch:         "loser_tag_matches_kind",
	WinnerDataTag:         "winner_data_tag",
	LoserDataTag:          "loser_data_tag",
	WinnerCaptureAge:      "winner_capture_age_log_hours",
	LoserCaptureAge:       "loser_capture_age_log_hours",
	WinnerSuccessRate:     "winner_source_success_rate",
	LoserSuccessRate:      "loser_source_success_rate",
	WinnerHistory:         "winner_source_history_log",
	LoserHistory:          "loser_source_history_log",
	WinnerOwnerOptional:   "winner_owner_optional",
	LoserOwnerOptional:    "loser_owner_optional",
	WinnerOwnerDependents: "winner_owner_dependents_log",
	LoserOwnerDependents:  "loser_owner_dependents_log",
	DroppedServices:       "dropped_services_log",
	WinnerCPUShare:        "winner_cpu_share",
	WinnerMemoryShare:     "winner_memory_share",
	LoserCPUShare:         "loser_cpu_share",
	LoserMemoryShare:      "loser_memory_share",
	PressureCPU:           "pressure_cpu",
	PressureMemory:        "pressure_memory",
	RoundConflicts:        "round_conflicts_log",
	KeyDataLike:           "key_data_like",
	KeyConfigLike:         "key_config_like",
	KeySecret:             "key_secret",
	WinnerOwnerLatency:    "winner_owner_latency_sensitive",
	LoserOwnerLatency:     "loser_owner_latency_sensitive",
}

// Count is the length of a feature vector.
const Count = int(numFeatures)

// SchemaHash returns "sha256:<hex>" of the version and the names in order.
func SchemaHash() string { return schemaHash }

var schemaHash = func() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("snapcompose-features/v%d\n%s", Version, strings.Join(Names[:], "\n"))))
	return "sha256:" + hex.EncodeToString(sum[:])
}()

// SourceHistory is how a source has fared in earlier compositions: of the
// compositions it took part in that have an outcome, how many were healthy.
type SourceHistory struct {
	Compositions int
	Healthy      int
}

// Rate returns the smoothed success rate (Healthy+1)/(Compositions+2): 0.5
// with no history, and never exactly 0 or 1.
func (h SourceHistory) Rate() float64 {
	return float64(h.Healthy+1) / float64(h.Compositions+2)
}

// Env is what extraction needs beyond the decision: the sources' history
// and the time capture ages are measured at.
type Env struct {
	History map[domain.SourceRef]SourceHistory
	Now     time.Time
}

// kindTags are the source tags that say a source is an authority on a kind
// of claim: a "data" source on files and volumes, a "config" source on
// variables and files, and so on.
var kindTags = map[domain.ClaimKind][]string{
	domain.ServiceClaim: {"app", "service", "services", "core", "backend", "frontend"},
	domain.VolumeClaim:  {"data", "storage", "database", "db", "state"},
	domain.PortClaim:    {"network", "ports", "ingress", "edge"},
	domain.EnvClaim:     {"config", "env", "settings", "secrets"},
	domain.FileClaim:    {"data", "config", "files", "seed"},
}

// Extract returns the feature vector of candidate cand of d.
func Extract(m *domain.Manifest, d *domain.Decision, cand int, env Env) []float32 {
	out := make([]float32, Count)
	ExtractInto(out, m, d, cand, env)
	return out
}

// ExtractAll returns the vectors of every candidate of every decision, row
// after row (len(rows) = Count × candidates), in order.
func ExtractAll(m *domain.Manifest, decisions []domain.Decision, env Env) []float32 {
	n := 0
	for _, d := range decisions {
		n += len(d.Candidates)
	}
	rows := make([]float32, n*Count)
	sources := sourceIndex(m)
	k := 0
	for i := range decisions {
		for j := range decisions[i].Candidates {
			extract(rows[k*Count:(k+1)*Count], m, sources, &decisions[i], j, env)
			k++
		}
	}
	return rows
}

// ExtractInto writes the vector of candidate cand of d into out (len Count).
func ExtractInto(out []float32, m *domain.Manifest, d *domain.Decision, cand int, env Env) {
	extract(out, m, sourceIndex(m), d, cand, env)
}

// sourceIndex maps each of m's sources by its ref.
func sourceIndex(m *domain.Manifest) map[domain.SourceRef]domain.Source {
	sources := make(map[domain.SourceRef]domain.Source, len(m.Sources))
	for _, s := range m.Sources {
		sources[s.Ref()] = s
	}
	return sources
}

// extract is ExtractInto with m's sources indexed once for a whole batch.
func extract(out []float32, m *domain.Manifest, sources map[domain.SourceRef]domain.Source, d *domain.Decision, cand int, env Env) {
	var f [numFeatures]float64
	cf := d.Conflict
	res := d.Candidates[cand].Resolution
	switch cf.Kind {
	case domain.ServiceClaim:
		f[KindService] = 1
	case domain.VolumeClaim:
		f[KindVolume] = 1
	case domain.PortClaim:
		f[KindPort] = 1
	case domain.EnvClaim:
		f[KindEnv] = 1
	case domain.FileClaim:
		f[KindFile] = 1
	}
	switch res.Action {
	case domain.Keep:
		f[ActionKeep] = 1
	case domain.Remap:
		f[ActionRemap] = 1
	case domain.Rename:
		f[ActionRename] = 1
	case domain.Share:
		f[ActionShare] = 1
	case domain.Merge:
		f[ActionMerge] = 1
	case domain.Drop:
		f[ActionDrop] = 1
	}
	f[Claimants] = math.Log1p(float64(len(cf.Claimants)))
	data, config, secret := KeyClass(cf)
	f[KeyDataLike], f[KeyConfigLike], f[KeySecret] = flag(data), flag(config), flag(secret)
	ctx := d.Context
	if ctx != nil {
		f[RoundConflicts] = math.Log1p(float64(ctx.Conflicts))
		f[PressureCPU] = share(ctx.Requested.CPUMillicores, m.ResourceLimits.CPUMillicores)
		f[PressureMemory] = share(ctx.Requested.MemoryBytes, m.ResourceLimits.MemoryBytes)
	}

	var winner *domain.Source
	if res.Winner != nil {
		if s, ok := sources[*res.Winner]; ok {
			winner = &s
		}
	}
	var losers []domain.Claimant
	var winnerClaim *domain.Claimant
	for i, c := range cf.Claimants {
		if winner != nil && c.Source == winner.Ref() {
			if winnerClaim == nil {
				winnerClaim = &cf.Claimants[i]
			}
			continue
		}
		losers = append(losers, c)
	}

	if winner != nil {
		// Order and priority among the claimants' sources.
		var idx, prio []int
		for _, c := range cf.Claimants {
			if s, ok := sources[c.Source]; ok {
				idx = append(idx, s.Index)
				prio = append(prio, s.Priority)
			}
		}
		f[WinnerFirst] = flag(winner.Index == slices.Min(idx))
		f[WinnerLast] = flag(winner.Index == slices.Max(idx))
		others := math.Inf(-1)
		below, distinct := 0, map[int]bool{}
		for _, c := range losers {
			if s, ok := sources[c.Source]; ok {
				others = math.Max(others, float64(s.Priority))
			}
		}
		for _, p := range prio {
			distinct[p] = true
			if p < winner.Priority {
				below++
			}
		}
		f[WinnerTopPriority] = flag(winner.Priority == slices.Max(prio))
		if !math.IsInf(others, -1) {
			f[WinnerPriorityMargin] = math.Tanh((float64(winner.Priority) - others) / 10)
		}
		if len(distinct) > 1 {
			f[WinnerPriorityRank] = float64(rankOf(winner.Priority, distinct)) / float64(len(distinct)-1)
		}
		f[WinnerLive] = flag(winner.Type == domain.LiveSource)
		f[WinnerTagMatch] = flag(tagMatch(winner.Tags, cf.Kind))
		f[WinnerDataTag] = flag(slices.Contains(winner.Tags, "data"))
		f[WinnerCaptureAge] = captureAge(ctx, winner.Ref(), env.Now)
		h := env.History[winner.Ref()]
		f[WinnerSuccessRate] = h.Rate()
		f[WinnerHistory] = math.Log1p(float64(h.Compositions))
		if winnerClaim != nil && winnerClaim.Owner != "" {
			if svc, ok := ctx.Service(winnerClaim.Source, winnerClaim.Owner); ok {
				f[WinnerOwnerOptional] = flag(svc.Optional)
				f[WinnerOwnerLatency] = flag(svc.LatencySensitive)
				f[WinnerOwnerDependents] = math.Log1p(float64(svc.Dependents))
				f[WinnerCPUShare] = share(svc.Requested.CPUMillicores, m.ResourceLimits.CPUMillicores)
				f[WinnerMemoryShare] = share(svc.Requested.MemoryBytes, m.ResourceLimits.MemoryBytes)
			}
		}
	}

	var rate float64
	dropped := 0
	for _, c := range losers {
		s, ok := sources[c.Source]
		if !ok {
			continue
		}
		f[LoserLive] = math.Max(f[LoserLive], flag(s.Type == domain.LiveSource))
		f[LoserTagMatch] = math.Max(f[LoserTagMatch], flag(tagMatch(s.Tags, cf.Kind)))
		f[LoserDataTag] = math.Max(f[LoserDataTag], flag(slices.Contains(s.Tags, "data")))
		f[LoserCaptureAge] = math.Max(f[LoserCaptureAge], captureAge(ctx, s.Ref(), env.Now))
		h := env.History[s.Ref()]
		rate += h.Rate()
		f[LoserHistory] = math.Max(f[LoserHistory], math.Log1p(float64(h.Compositions)))
		if c.Owner == "" {
			continue
		}
		if svc, ok := ctx.Service(c.Source, c.Owner); ok {
			f[LoserOwnerOptional] = math.Max(f[LoserOwnerOptional], flag(svc.Optional))
			f[LoserOwnerLatency] = math.Max(f[LoserOwnerLatency], flag(svc.LatencySensitive))
			f[LoserOwnerDependents] = math.Max(f[LoserOwnerDependents], math.Log1p(float64(svc.Dependents)))
			f[LoserCPUShare] = math.Max(f[LoserCPUShare], share(svc.Requested.CPUMillicores, m.ResourceLimits.CPUMillicores))
			f[LoserMemoryShare] = math.Max(f[LoserMemoryShare], share(svc.Requested.MemoryBytes, m.ResourceLimits.MemoryBytes))
			if res.Action == domain.Drop {
				dropped += 1 + svc.Dependents
			}
		}
	}
	if len(losers) > 0 {
		f[LoserSuccessRate] = rate / float64(len(losers))
	}
	f[DroppedServices] = math.Log1p(float64(dropped))
	for i, v := range f {
		out[i] = float32(v)
	}
}

// dataWords and configWords classify a variable's name or a file's path:
// data (where the data lives, and the data itself) or configuration (how
// the software behaves).
var (
	dataWords   = []string{"DATABASE", "DB", "DSN", "URL", "URI", "HOST", "BUCKET", "DATA", "SEED", "DUMP", "/SRV/", "/VAR/LIB/", ".CSV", ".SQL", ".PARQUET", ".JSON"}
	configWords = []string{"LOG", "LEVEL", "ENV", "MODE", "DEBUG", "FEATURE", "FLAG", "TIMEOUT", "WORKERS", "CONF", "/ETC/", ".YAML", ".YML", ".INI", ".TOML"}
)

// KeyClass says whether a variable or file conflict's key looks like data,
// like configuration, or like a secret (all false for other kinds).
func KeyClass(cf domain.Conflict) (data, config, secret bool) {
	var name string
	switch cf.Kind {
	case domain.EnvClaim:
		name = strings.TrimPrefix(cf.Key, "env:")
		secret = domain.IsSecretName(name)
	case domain.FileClaim:
		name = strings.TrimPrefix(cf.Key, "file:")
	default:
		return false, false, false
	}
	upper := strings.ToUpper(name)
	has := func(words []string) bool {
		for _, w := range words {
			if strings.Contains(upper, w) {
				return true
			}
		}
		return false
	}
	return has(dataWords), has(configWords), secret
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// share is part/whole, capped at 4 (a part far over its limit says no more).
func share(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return math.Min(float64(part)/float64(whole), 4)
}

func rankOf(p int, distinct map[int]bool) int {
	r := 0
	for q := range distinct {
		if q < p {
			r++
		}
	}
	return r
}

func tagMatch(tags []string, kind domain.ClaimKind) bool {
	for _, t := range tags {
		if slices.Contains(kindTags[kind], strings.ToLower(t)) {
			return true
		}
	}
	return false
}

// captureAge is log(1 + hours since src was captured), 0 for a source that
// was not captured (a template) or without a clock.
func captureAge(ctx *domain.DecisionContext, src domain.SourceRef, now time.Time) float64 {
	if ctx == nil || now.IsZero() {
		return 0
	}
	at, ok := ctx.CapturedAt[src]
	if !ok || at.IsZero() {
		return 0
	}
	return math.Log1p(math.Max(now.Sub(at).Hours(), 0))
}
