package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/onnxexport"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/simulate"
	"github.com/snapcompose/snapcompose/training/train"
)

// DefaultPods is the OpenB pod list the simulator sizes services from,
// relative to the repository root.
const DefaultPods = "data/alibaba-openb/openb_pod_list_default.csv"

// DefaultRealWeight: a real composition's decisions count this many times
// a simulated one's. Real history is what the model is for; simulated
// history only bootstraps it.
const DefaultRealWeight = 5

// Simulated reports whether a composition name is the simulator's.
func Simulated(name string) bool { return strings.HasPrefix(name, "sim-") }

// Options configure Train.
type Options struct {
	// Simulate, when positive, first simulates that many compositions of
	// seed Seed into the history (refused when the history holds Seed's
	// compositions already).
	Simulate int
	// Seed seeds the simulator and the trainer (split, initial weights,
	// shuffling).
	Seed uint64
	// Pods is the OpenB pod list for the simulator; "" means DefaultPods.
	// Without a readable pod list the decision-quality table is left out
	// (simulating needs it).
	Pods string
	// Workers write simulated compositions concurrently; < 1 means 2.
	Workers int
	// From and To bound the creation time of the compositions trained on,
	// [From, To); zero leaves an end open.
	From, To time.Time
	// Promote promotes the challenger whatever the comparison says.
	Promote bool
	// Config is the trainer's; nil means train.DefaultConfig(). Its Seed
	// is replaced by Seed and its Progress by Progress.
	Config *train.Config
	// Progress receives progress lines and bars; nil is silent.
	Progress io.Writer
	// RealWeight is how many times a decision of a real composition counts
	// against one of a simulated composition (named sim-SEED-N) in
	// training; 0 means DefaultRealWeight.
	RealWeight int
	// OnRun, when set, is told the training run's record as soon as it
	// exists, before training starts (an API answers with it).
	OnRun func(store.TrainingRun)
	// By names who asked for the run, for the promotion record; "" means
	// "retraining".
	By string
}

// Outcome is everything a training run produced, for printing.
type Outcome struct {
	Run       store.TrainingRun // as it ended
	Simulated int               // compositions simulated first
	// CreatedFirst and CreatedLast are the creation times of the first and
	// the last composition trained on.
	CreatedFirst, CreatedLast time.Time
	Data                      *pipeline.Data
	Result                    *train.Result
	Quality                   *pipeline.Quality // nil when not computed
	QualityNote               string            // why not, when nil
	// Champion is the model promoted before this run, if any (without its
	// bytes); ChampionMetrics its metrics on the challenger's test rows
	// when comparable.
	Champion        *store.ModelVersion
	ChampionMetrics *train.Metrics
	// ChallengerMetrics are the challenger's on the same rows.
	ChallengerMetrics *train.Metrics
	// ChampionOutcomeLoss and ChallengerOutcomeLoss are the two models'
	// log loss on the verdicts of the compositions of those rows, under the
	// noisy-AND model the training climbs (pipeline.OutcomeLogLoss): the
	// yardstick of the comparison.
	ChampionOutcomeLoss, ChallengerOutcomeLoss float64
	// RealCompositions and RealRows count the history that is not
	// simulated; RealTestMetrics score the chosen model on the held-out
	// decisions of real compositions (nil when none was held out).
	RealCompositions, RealRows int
	RealTestMetrics            *train.Metrics
	RealTestRows               int
	Card                       *Card
	CardJSON                   []byte // Card.Encode()
	ONNX                       []byte
	Version                    store.ModelVersion // the challenger as registered
	// Existing says the very same model was registered already (same
	// network, schema and trainer): Version is that one.
	Existing bool
	// Promoted says the challenger serves now; Comparison says why or why
	// not.
	Promoted   bool
	Comparison Comparison
	Durations  struct{ Simulate, Load, Train, Quality time.Duration }
}

// Train runs the pipeline once: optionally simulates history, trains on
// the history of opt's window, registers the chosen model as a challenger
// and promotes it if it beats the champion on the challenger's held-out
// rows (lower test log loss), if there is no champion, if the champion
// cannot be compared, or if opt.Promote forces it. Every attempt is
// recorded as a training run, failed ones with their error.
func Train(ctx context.Context, st *store.Store, opt Options) (*Outcome, error) {
	if opt.Simulate < 0 {
		return nil, domain.Errorf(domain.EINVALID, "--simulate: %d compositions: want 0 or more", opt.Simulate)
	}
	if !opt.From.IsZero() && !opt.To.IsZero() && !opt.From.Before(opt.To) {
		return nil, domain.Errorf(domain.EINVALID, "--from %s is not before --to %s", opt.From.Format(time.RFC3339), opt.To.Format(time.RFC3339))
	}
	if opt.Workers < 1 {
		opt.Workers = 2
	}
	if opt.RealWeight == 0 {
		opt.RealWeight = DefaultRealWeight
	}
	if opt.By == "" {
		opt.By = "retraining"
	}
	pods := opt.Pods
	if pods == "" {
		pods = DefaultPods
	}
	out := &Outcome{}
	say := func(format string, args ...any) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, format+"\n", args...)
		}
	}

	var sim *simulate.Simulator
	loadSim := func() error {
		if sim != nil {
			return nil
		}
		p, err := simulate.LoadPods(pods)
		if err != nil {
			return domain.Errorf(domain.EINVALID, "--pods: %v", err)
		}
		sim, err = simulate.New(opt.Seed, p)
		return err
	}
	if opt.Simulate > 0 {
		if err := loadSim(); err != nil {
			return nil, err
		}
		n, err := simulatedCount(ctx, st, opt.Seed)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, domain.Errorf(domain.EINVALID, "--seed: the history holds %d simulated compositions of seed %d already; simulate with another --seed, or train on them without --simulate", n, opt.Seed)
		}
		say("simulating %d compositions (seed %d, %d writers)", opt.Simulate, opt.Seed, opt.Workers)
		start := time.Now()
		if err := pipeline.Simulate(ctx, st, sim, opt.Simulate, opt.Workers, opt.Progress); err != nil {
			return nil, fmt.Errorf("simulating: %w", err)
		}
		out.Durations.Simulate = time.Since(start)
		out.Simulated = opt.Simulate
		say("simulated %d compositions in %.1fs", opt.Simulate, out.Durations.Simulate.Seconds())
	}

	run, err := st.CreateTrainingRun(ctx, opt.From, opt.To)
	if err != nil {
		return nil, err
	}
	if run, err = st.UpdateTrainingRun(ctx, run.ID, store.TrainingUpdate{Status: store.TrainingRunning}); err != nil {
		return nil, err
	}
	out.Run = run
	if opt.OnRun != nil {
		opt.OnRun(run)
	}
	err = trainRun(ctx, st, opt, out, run.ID, loadSim, func() *simulate.Simulator { return sim }, say)
	if err != nil {
		// Record the failure even when ctx was cancelled.
		msg := domain.ErrorMessage(err)
		if msg == "" {
			msg = err.Error()
		}
		if r, uerr := st.UpdateTrainingRun(context.WithoutCancel(ctx), run.ID, store.TrainingUpdate{Status: store.TrainingFailed, Error: msg}); uerr == nil {
			out.Run = r
		}
		return nil, err
	}
	return out, nil
}

func progressPtr(f float32) *float32 { return &f }

func trainRun(ctx context.Context, st *store.Store, opt Options, out *Outcome, runID int64,
	loadSim func() error, simOf func() *simulate.Simulator, say func(string, ...any)) error {
	schema := features.SchemaHash()

	start := time.Now()
	data, err := pipeline.Load(ctx, st, opt.From, opt.To)
	if err != nil {
		return err
	}
	out.Data = data
	out.Durations.Load = time.Since(start)
	if out.CreatedFirst, out.CreatedLast, err = createdRange(ctx, st, schema, opt.From, opt.To); err != nil {
		return err
	}
	rows := int64(len(data.X))
	say("loaded %d rows of %d compositions in %.1fs", rows, len(data.Names), out.Durations.Load.Seconds())
	if _, err := st.UpdateTrainingRun(ctx, runID, store.TrainingUpdate{Rows: &rows, Progress: progressPtr(0.1)}); err != nil {
		return err
	}

	cfg := train.DefaultConfig()
	if opt.Config != nil {
		cfg = *opt.Config
	}
	cfg.Seed, cfg.Progress = opt.Seed, opt.Progress
	weight := opt.RealWeight
	real := make([]bool, len(data.Names))
	for g, name := range data.Names {
		real[g] = !Simulated(name)
	}
	for _, g := range data.Group {
		if real[g] {
			out.RealRows++
		}
	}
	for _, r := range real {
		if r {
			out.RealCompositions++
		}
	}
	if out.RealRows > 0 && weight != 1 {
		cfg.Weight = func(i int) int {
			if real[data.Group[i]] {
				return weight
			}
			return 1
		}
	}
	say("history: %d real compositions (%d decisions, weight %d), %d simulated (%d decisions)",
		out.RealCompositions, out.RealRows, weight, len(data.Names)-out.RealCompositions, len(data.X)-out.RealRows)
	start = time.Now()
	// Expectation-maximisation over the noisy-AND model of a composition's
	// outcome (pipeline.Fit): the hard labels blame every decision that
	// touched an unhealthy service; EM sorts out which one broke it.
	res, err := pipeline.Fit(data, cfg, pipeline.DefaultRounds)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "training on %d rows of %d compositions: %v", rows, len(data.Names), err)
	}
	out.Result = res
	out.Durations.Train = time.Since(start)
	// The held-out decisions of real compositions, scored on their own.
	var realTest []int
	for _, i := range res.Split.Test.Rows {
		if real[data.Group[i]] {
			realTest = append(realTest, i)
		}
	}
	if len(realTest) > 0 {
		m, err := train.Evaluate(res.Best, data.Dataset, realTest)
		if err != nil {
			return err
		}
		out.RealTestMetrics, out.RealTestRows = &m, len(realTest)
	}
	say("trained both models (%d EM rounds) in %.1fs", pipeline.DefaultRounds, out.Durations.Train.Seconds())
	if _, err := st.UpdateTrainingRun(ctx, runID, store.TrainingUpdate{Progress: progressPtr(0.6)}); err != nil {
		return err
	}

	// The champion, and whether it can be scored on the same test rows.
	var champNet *nn.Network
	champ, err := st.PromotedModel(ctx)
	switch {
	case err == nil:
		champ.ONNX = nil
		out.Champion = &champ
		champNet, err = comparableNetwork(champ, schema)
		if err != nil {
			out.Comparison.Reason = err.Error()
			break
		}
		rows, unseen, err := comparisonRows(ctx, st, data, res.Split.Test, champ.CreatedAt)
		if err != nil {
			return err
		}
		cm, err := train.Evaluate(champNet, data.Dataset, rows)
		if err != nil {
			return err
		}
		chm, err := train.Evaluate(res.Best, data.Dataset, rows)
		if err != nil {
			return err
		}
		out.ChampionMetrics, out.ChallengerMetrics = &cm, &chm
		out.ChampionOutcomeLoss = pipeline.OutcomeLogLoss(champNet, data, rows)
		out.ChallengerOutcomeLoss = pipeline.OutcomeLogLoss(res.Best, data, rows)
		out.Comparison.Rows, out.Comparison.UnseenByChampion = len(rows), unseen
	case domain.ErrorCode(err) == domain.ENOTFOUND:
	default:
		return err
	}

	// Decision quality on the held-out compositions the simulator made.
	var held []string
	for _, g := range res.Split.Test.Groups {
		held = append(held, data.Names[g])
	}
	nSim := 0
	for _, n := range held {
		if strings.HasPrefix(n, simPrefix(opt.Seed)) {
			nSim++
		}
	}
	switch {
	case nSim == 0:
		out.QualityNote = fmt.Sprintf("left out: none of the %d held-out compositions was simulated with seed %d, so the simulator's ground truth cannot judge them", len(held), opt.Seed)
	default:
		if err := loadSim(); err != nil {
			out.QualityNote = fmt.Sprintf("left out: %s", domain.ErrorMessage(err))
			break
		}
		nets := map[string]*nn.Network{"logistic": res.Logistic, "mlp": res.MLP}
		if champNet != nil {
			nets["champion"] = champNet
		}
		say("judging decisions on %d held-out compositions", nSim)
		start = time.Now()
		q, err := pipeline.DecisionQuality(ctx, st, simOf(), opt.Seed, held, nets)
		if err != nil {
			return fmt.Errorf("decision quality: %w", err)
		}
		out.Durations.Quality = time.Since(start)
		say("judged in %.1fs", out.Durations.Quality.Seconds())
		out.Quality = q
	}
	if _, err := st.UpdateTrainingRun(ctx, runID, store.TrainingUpdate{Progress: progressPtr(0.8)}); err != nil {
		return err
	}

	// The verdict.
	best := res.Best
	cmp := &out.Comparison
	cmp.ChallengerLogLoss, cmp.ChampionLogLoss = Float(res.Metrics[best.Kind].LogLoss), Float(math.NaN())
	switch {
	case out.Champion == nil:
		cmp.ChallengerWins = true
		cmp.Reason = "no model was promoted, so the challenger becomes the champion"
	case out.ChampionMetrics == nil:
		cmp.Champion = out.Champion.Version
		cmp.ChallengerWins = true
		cmp.Reason = fmt.Sprintf("champion %s cannot be compared (%s), so the challenger wins", out.Champion.Version, cmp.Reason)
	default:
		cmp.Champion, cmp.Comparable = out.Champion.Version, true
		challengerLoss, cl := out.ChallengerOutcomeLoss, out.ChampionOutcomeLoss
		cmp.ChallengerLogLoss, cmp.ChampionLogLoss = Float(challengerLoss), Float(cl)
		cmp.ChallengerWins = challengerLoss < cl
		rel := "below"
		if !cmp.ChallengerWins {
			rel = "not below"
		}
		which := fmt.Sprintf("the %d held-out rows of compositions newer than the champion", cmp.Rows)
		if !cmp.UnseenByChampion {
			which = fmt.Sprintf("all %d held-out rows (fewer than %d are newer than the champion, so it may have trained on some)", cmp.Rows, minUnseenRows)
		}
		cmp.Reason = fmt.Sprintf("the challenger's log loss on the compositions' verdicts %.5f is %s champion %s's %.5f, on %s", challengerLoss, rel, out.Champion.Version, cl, which)
	}
	if opt.Promote && !cmp.ChallengerWins {
		cmp.Forced = true
		cmp.Reason += "; promoted anyway (--promote)"
	}

	// The card and the ONNX file.
	netJSON, err := json.Marshal(best)
	if err != nil {
		return err
	}
	version := versionName(best, len(data.Names), netJSON)
	onnx, err := onnxexport.Marshal(best, onnxexport.Metadata{
		FeatureSchemaHash: schema, FeatureNames: features.Names[:], ModelVersion: version, TrainerVersion: TrainerVersion,
	})
	if err != nil {
		return err
	}
	card := buildCard(opt, data, res, out, version, onnx)
	cardJSON, err := card.Encode()
	if err != nil {
		return fmt.Errorf("encoding the model card: %w", err)
	}
	out.Card, out.CardJSON, out.ONNX = card, cardJSON, onnx

	metricsJSON, err := json.Marshal(versionMetrics(card))
	if err != nil {
		return err
	}
	mv, err := st.InsertModelVersion(ctx, store.ModelVersion{
		Version: version, Card: cardJSON, Metrics: metricsJSON, ONNX: onnx, ONNXDigest: card.ONNXDigest, FeatureSchema: schema,
	})
	if domain.ErrorCode(err) == domain.ECONFLICT {
		// The same network from the same data: it is registered already.
		existing, gerr := st.ModelVersion(ctx, version)
		if gerr != nil {
			return gerr
		}
		if existing.ONNXDigest != card.ONNXDigest {
			return domain.Errorf(domain.ECONFLICT, "model version %s is registered with other bytes (%s, this run made %s): was the exporter changed without changing TrainerVersion?", version, existing.ONNXDigest, card.ONNXDigest)
		}
		existing.ONNX = nil
		mv, err, out.Existing = existing, nil, true
		say("model %s is registered already (the same network from the same data)", version)
	}
	if err != nil {
		return err
	}
	out.Version = mv
	say("registered challenger %s (%s, %s)", mv.Version, best.Kind, mv.ONNXDigest)

	switch {
	case mv.Promoted:
		out.Promoted = true
		cmp.Reason = "it is the promoted model already (the same network was trained before)"
	case cmp.ChallengerWins || opt.Promote:
		by, why := "retraining", cmp.Reason
		if opt.Promote && !cmp.ChallengerWins {
			by, why = opt.By, "promotion asked for: "+cmp.Reason
		}
		if err := st.PromoteModelBy(ctx, mv.Version, by, why); err != nil {
			return err
		}
		out.Promoted = true
	}
	out.Version.Promoted = out.Promoted

	runMetrics, err := json.Marshal(runSummary(out))
	if err != nil {
		return err
	}
	id := mv.ID
	r, err := st.UpdateTrainingRun(ctx, runID, store.TrainingUpdate{
		Status: store.TrainingSucceeded, Progress: progressPtr(1), Metrics: runMetrics, ModelVersionID: &id,
	})
	if err != nil {
		return err
	}
	out.Run = r
	return nil
}

// minUnseenRows is how many held-out rows of compositions newer than the
// champion the comparison wants before it trusts them alone.
const minUnseenRows = 200

// comparisonRows returns the test rows to compare the champion on: those of
// compositions created after the champion was registered, which it cannot
// have trained on, when there are at least minUnseenRows of them; else all
// the test rows.
func comparisonRows(ctx context.Context, st *store.Store, data *pipeline.Data, test train.Indices, champCreated time.Time) ([]int, bool, error) {
	newer, err := namesAfter(ctx, st, champCreated)
	if err != nil {
		return nil, false, err
	}
	var rows []int
	for _, i := range test.Rows {
		if newer[data.Names[data.Group[i]]] {
			rows = append(rows, i)
		}
	}
	if len(rows) >= minUnseenRows {
		return rows, true, nil
	}
	return test.Rows, false, nil
}

// comparableNetwork returns the champion's network when its feature schema
// is this build's and its card carries it.
func comparableNetwork(champ store.ModelVersion, schema string) (*nn.Network, error) {
	if champ.FeatureSchema != schema {
		return nil, fmt.Errorf("it was trained on feature schema %s, this build extracts %s", short(champ.FeatureSchema), short(schema))
	}
	var c struct {
		Network *nn.Network `json:"network"`
	}
	if err := json.Unmarshal(champ.Card, &c); err != nil || c.Network == nil {
		return nil, errors.New("its card carries no network to score")
	}
	if err := c.Network.Validate(); err != nil {
		return nil, fmt.Errorf("its card's network is invalid: %v", err)
	}
	if c.Network.Inputs() != features.Count {
		return nil, fmt.Errorf("its network takes %d features, this build extracts %d", c.Network.Inputs(), features.Count)
	}
	return c.Network, nil
}

// versionName names a model after what determines it: its kind, how many
// compositions it learnt from, and a digest of its network, feature schema
// and trainer version. The same training gives the same name.
func versionName(n *nn.Network, compositions int, netJSON []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\nir%d opset%d\n", TrainerVersion, features.SchemaHash(), onnxexport.IRVersion, onnxexport.OpsetVersion)
	h.Write(netJSON)
	return fmt.Sprintf("%s-%dc-%s", n.Kind, compositions, hex.EncodeToString(h.Sum(nil))[:10])
}

func simPrefix(seed uint64) string {
	return strings.TrimSuffix(simulate.Name(seed, 0), "000000")
}

func short(hash string) string {
	s := strings.TrimPrefix(hash, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func buildCard(opt Options, data *pipeline.Data, res *train.Result, out *Outcome, version string, onnx []byte) *Card {
	best := res.Best
	c := &Card{
		ModelVersion: version, Kind: best.Kind, KindReason: res.Reason, TrainerVersion: TrainerVersion, Seed: opt.Seed,
		Features: CardFeatures{Version: features.Version, SchemaHash: features.SchemaHash(), Names: features.Names[:]},
		Split:    CardSplit{Train: cardPart(res.Split.Train), Validation: cardPart(res.Split.Validation), Test: cardPart(res.Split.Test)},
		Metrics: CardModels{
			Logistic: cardMetrics(res.Metrics["logistic"], best.Kind == "logistic"),
			MLP:      cardMetrics(res.Metrics["mlp"], best.Kind == "mlp"),
		},
		Training:           CardTraining{Logistic: cardHistory(res.History["logistic"]), MLP: cardHistory(res.History["mlp"])},
		ChampionChallenger: out.Comparison,
		ONNXDigest:         domain.Digest(onnx),
		ONNXIRVersion:      onnxexport.IRVersion,
		ONNXOpset:          onnxexport.OpsetVersion,
		ONNXInput:          fmt.Sprintf("%s[%s, %d] float32", onnxexport.InputName, onnxexport.BatchParam, best.Inputs()),
		ONNXOutput:         fmt.Sprintf("%s[%s, 1] float32", onnxexport.OutputName, onnxexport.BatchParam),
		Network:            best,
	}
	cfg := train.DefaultConfig()
	if opt.Config != nil {
		cfg = *opt.Config
	}
	c.Config = cardConfig(cfg)
	c.Config.EMRounds = pipeline.DefaultRounds
	pos := 0
	for _, y := range data.Y {
		pos += int(y)
	}
	c.Data = CardData{
		Compositions: len(data.Names), Rows: len(data.X), Positives: pos,
		FirstComposition: minName(data.Names), LastComposition: maxName(data.Names),
		Simulated: out.Simulated,
	}
	if out.RealCompositions > 0 {
		c.Data.Origins = &CardOrigins{
			Real:      CardOrigin{Compositions: out.RealCompositions, Rows: out.RealRows, Weight: opt.RealWeight},
			Simulated: CardOrigin{Compositions: len(data.Names) - out.RealCompositions, Rows: len(data.X) - out.RealRows, Weight: 1},
		}
		if out.RealTestMetrics != nil {
			m := cardMetrics(*out.RealTestMetrics, false)
			c.Data.Origins.RealTest = &m
			c.Data.Origins.RealTestRows = out.RealTestRows
		}
	}
	if !opt.From.IsZero() {
		c.Data.From = opt.From.UTC().Format(time.RFC3339Nano)
	}
	if !opt.To.IsZero() {
		c.Data.To = opt.To.UTC().Format(time.RFC3339Nano)
	}
	if q := out.Quality; q != nil {
		cq := &CardQuality{Compositions: q.Compositions, Seed: opt.Seed, Chosen: best.Kind}
		for _, p := range q.Order {
			cq.Policies = append(cq.Policies, PolicySuccess{Policy: p, Success: Float(q.Success[p])})
		}
		c.DecisionQuality = cq
	} else {
		c.DecisionQualityNote = out.QualityNote
	}
	return c
}

func minName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	m := names[0]
	for _, n := range names[1:] {
		m = min(m, n)
	}
	return m
}

func maxName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	m := names[0]
	for _, n := range names[1:] {
		m = max(m, n)
	}
	return m
}

// versionMetrics is what model_versions.metrics holds: the chosen model's
// test metrics and decision quality, for listing without the whole card.
func versionMetrics(c *Card) any {
	m := c.ChosenMetrics()
	m.Calibration = nil
	return struct {
		Kind            string       `json:"kind"`
		Test            CardMetrics  `json:"test"`
		DecisionQuality *CardQuality `json:"decision_quality,omitempty"`
	}{c.Kind, m, c.DecisionQuality}
}

// runSummary is what training_runs.metrics holds.
func runSummary(o *Outcome) any {
	type window struct {
		First string `json:"first_created_at,omitempty"`
		Last  string `json:"last_created_at,omitempty"`
	}
	w := window{}
	if !o.CreatedFirst.IsZero() {
		w.First, w.Last = o.CreatedFirst.Format(time.RFC3339Nano), o.CreatedLast.Format(time.RFC3339Nano)
	}
	m := o.Card.ChosenMetrics()
	m.Calibration = nil
	return struct {
		ModelVersion    string       `json:"model_version"`
		Kind            string       `json:"kind"`
		Compositions    int          `json:"compositions"`
		Data            window       `json:"data"`
		Simulated       int          `json:"simulated,omitempty"`
		Origins         *CardOrigins `json:"origins,omitempty"`
		Test            CardMetrics  `json:"test"`
		DecisionQuality *CardQuality `json:"decision_quality,omitempty"`
		Promoted        bool         `json:"promoted"`
		Comparison      Comparison   `json:"champion_challenger"`
	}{o.Version.Version, o.Card.Kind, o.Card.Data.Compositions, w, o.Simulated, o.Card.Data.Origins, m, o.Card.DecisionQuality, o.Promoted, o.Comparison}
}

// Exported is what Export wrote.
type Exported struct {
	Version            store.ModelVersion // without its bytes
	ONNXPath, CardPath string
}

// Export writes model version version ("promoted" for the promoted one)
// into dir as ONNXFile and CardFile, creating dir if needed. The card is
// written in its canonical form (Card.Encode), so exporting the same
// version always gives the same bytes.
func Export(ctx context.Context, st *store.Store, version, dir string) (*Exported, error) {
	var mv store.ModelVersion
	var err error
	if version == "promoted" {
		mv, err = st.PromotedModel(ctx)
	} else {
		mv, err = st.ModelVersion(ctx, version)
	}
	if err != nil {
		return nil, err
	}
	if got := domain.Digest(mv.ONNX); got != mv.ONNXDigest {
		return nil, fmt.Errorf("model version %s: its bytes digest to %s, the registry says %s", mv.Version, got, mv.ONNXDigest)
	}
	card, err := DecodeCard(mv.Card)
	if err != nil {
		return nil, fmt.Errorf("model version %s: reading its card: %w", mv.Version, err)
	}
	cardJSON, err := card.Encode()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, domain.Errorf(domain.EINVALID, "--out: %v", err)
	}
	ex := &Exported{ONNXPath: filepath.Join(dir, ONNXFile), CardPath: filepath.Join(dir, CardFile)}
	if err := writeFile(ex.ONNXPath, mv.ONNX); err != nil {
		return nil, err
	}
	if err := writeFile(ex.CardPath, cardJSON); err != nil {
		return nil, err
	}
	mv.ONNX = nil
	ex.Version = mv
	return ex, nil
}

// writeFile replaces path with data atomically (a reader never sees half a
// model).
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return domain.Errorf(domain.EINVALID, "--out: %v", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
