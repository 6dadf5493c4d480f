package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/training/onnxexport"
	"github.com/snapcompose/snapcompose/training/registry"
	"github.com/snapcompose/snapcompose/training/simulate"
	"github.com/snapcompose/snapcompose/training/train"
)

// root is the repository root.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func pods() string { return filepath.Join(root(), registry.DefaultPods) }

const remake = "the committed model is stale: run `make model` and commit model/"

// TestCommittedModel checks model/negotiator.onnx against its card and this
// build: the card's digest is the file's, the file was trained on the
// feature schema this build extracts, and the card is in canonical form
// and holds the very network the file encodes. A change of the features,
// the exporter or the card without `make model` fails here.
func TestCommittedModel(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(root(), "model")
	onnx, err := os.ReadFile(filepath.Join(dir, registry.ONNXFile))
	if err != nil {
		t.Fatalf("%v: %s", err, remake)
	}
	cardJSON, err := os.ReadFile(filepath.Join(dir, registry.CardFile))
	if err != nil {
		t.Fatalf("%v: %s", err, remake)
	}
	card, err := registry.DecodeCard(cardJSON)
	if err != nil {
		t.Fatalf("model/%s: %v: %s", registry.CardFile, err, remake)
	}
	if got := domain.Digest(onnx); card.ONNXDigest != got {
		t.Errorf("model/%s says onnx_digest %s, model/%s digests to %s: %s", registry.CardFile, card.ONNXDigest, registry.ONNXFile, got, remake)
	}
	meta, err := onnxexport.ReadMetadata(onnx)
	if err != nil {
		t.Fatalf("model/%s: %v: %s", registry.ONNXFile, err, remake)
	}
	if got, want := meta[onnxexport.KeyFeatureSchemaHash], features.SchemaHash(); got != want {
		t.Errorf("model/%s was trained on feature schema %s, this build extracts %s: %s", registry.ONNXFile, got, want, remake)
	}
	if card.Features.SchemaHash != features.SchemaHash() || card.Features.Version != features.Version {
		t.Errorf("the card's features are version %d, schema %s; this build's are version %d, schema %s: %s",
			card.Features.Version, card.Features.SchemaHash, features.Version, features.SchemaHash(), remake)
	}
	if got := meta[onnxexport.KeyModelVersion]; got != card.ModelVersion {
		t.Errorf("model/%s is version %q, its card says %q: %s", registry.ONNXFile, got, card.ModelVersion, remake)
	}
	if again, err := card.Encode(); err != nil || !bytes.Equal(again, cardJSON) {
		t.Errorf("model/%s is not in canonical form (err %v): %s", registry.CardFile, err, remake)
	}
	if card.Network == nil {
		t.Fatalf("model/%s carries no network: %s", registry.CardFile, remake)
	}
	rebuilt, err := onnxexport.Marshal(card.Network, onnxexport.Metadata{
		FeatureSchemaHash: card.Features.SchemaHash, FeatureNames: card.Features.Names,
		ModelVersion: card.ModelVersion, TrainerVersion: card.TrainerVersion,
	})
	if err != nil {
		t.Fatalf("exporting the card's network: %v", err)
	}
	if !bytes.Equal(rebuilt, onnx) {
		t.Errorf("the card's network exports to %s, not model/%s's %s: %s", domain.Digest(rebuilt), registry.ONNXFile, domain.Digest(onnx), remake)
	}
	if card.TrainerVersion != registry.TrainerVersion {
		t.Errorf("the card is from trainer %s, this build's is %s: %s", card.TrainerVersion, registry.TrainerVersion, remake)
	}
}

// TestCommittedModelRunsInONNXRuntime loads model/negotiator.onnx the way
// AI_AGENT does and wants the card's network's own scores, within 1e-5, on
// rows around the training data's means.
func TestCommittedModelRunsInONNXRuntime(t *testing.T) {
	t.Parallel()
	lib := os.Getenv("ONNXRUNTIME_LIB")
	if lib == "" {
		lib = agent.CachedLibrary()
	}
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no onnxruntime library: set ONNXRUNTIME_LIB or run `make onnxruntime`")
		}
		t.Skip("no onnxruntime library: set ONNXRUNTIME_LIB or run `make onnxruntime`")
	}
	dir := filepath.Join(root(), "model")
	cardJSON, err := os.ReadFile(filepath.Join(dir, registry.CardFile))
	if err != nil {
		t.Fatalf("%v: %s", err, remake)
	}
	card, err := registry.DecodeCard(cardJSON)
	if err != nil || card.Network == nil {
		t.Fatalf("model/%s: %v: %s", registry.CardFile, err, remake)
	}
	m, err := agent.LoadModel(filepath.Join(dir, registry.ONNXFile), agent.ModelOptions{Library: lib, SchemaHash: features.SchemaHash(), Features: features.Count})
	if err != nil {
		t.Fatalf("%v: %s", err, remake)
	}
	defer m.Close()
	// Held-out rows: every candidate of 40 compositions of another seed
	// than the model's, as the features extract them.
	pods, err := simulate.LoadPods(filepath.Join(root(), "data", "alibaba-openb", "openb_pod_list_default.csv"))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.New(card.Seed+1, pods)
	if err != nil {
		t.Fatal(err)
	}
	var in []float32
	err = sim.Generate(40, func(run *simulate.Run, _ simulate.History) error {
		for _, cands := range run.Features {
			for _, f := range cands {
				in = append(in, f...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := len(in) / features.Count
	if rows < 100 {
		t.Fatalf("only %d candidate rows", rows)
	}
	want := make([]float64, rows)
	x := make([]float64, features.Count)
	for r := range rows {
		for j := range x {
			x[j] = float64(in[r*features.Count+j])
		}
		want[r] = card.Network.Forward(x)
	}
	got, err := m.Score(in, rows)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		if d := math.Abs(float64(got[r]) - want[r]); d > 1e-5 {
			t.Errorf("row %d: onnxruntime scores %v, the network %v (off by %.2g)", r, got[r], want[r], d)
		}
	}
}

// smallConfig trains quickly on a few hundred compositions.
func smallConfig() *train.Config {
	c := train.DefaultConfig()
	c.MaxEpochs = 20
	return &c
}

// TestTrainIsDeterministic runs the whole pipeline — simulate, load from
// Postgres, train, judge, export — twice into two fresh databases and wants
// the same bytes, as `make model` needs; and the card, stored as jsonb and
// exported, comes back byte for byte.
func TestTrainIsDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var onnx, card [2][]byte
	for i := range 2 {
		st := store.New(pgtest.NewPool(t))
		o, err := registry.Train(ctx, st, registry.Options{Simulate: 200, Seed: 5, Pods: pods(), Promote: true, Config: smallConfig()})
		if err != nil {
			t.Fatal(err)
		}
		if !o.Promoted || o.Run.Status != store.TrainingSucceeded || o.Run.ModelVersionID == nil || *o.Run.ModelVersionID != o.Version.ID {
			t.Errorf("run %d: promoted %v, training run %+v, model version id %d", i, o.Promoted, o.Run, o.Version.ID)
		}
		if o.Card.DecisionQuality == nil || o.Card.DecisionQuality.Compositions == 0 {
			t.Errorf("run %d: no decision quality: %s", i, o.Card.DecisionQualityNote)
		}
		dir := t.TempDir()
		ex, err := registry.Export(ctx, st, "promoted", dir)
		if err != nil {
			t.Fatal(err)
		}
		onnx[i], _ = os.ReadFile(ex.ONNXPath)
		card[i], _ = os.ReadFile(ex.CardPath)
		if !bytes.Equal(onnx[i], o.ONNX) || !bytes.Equal(card[i], o.CardJSON) {
			t.Errorf("run %d: the exported files are not the bytes Train made (the card does not survive jsonb?)", i)
		}
		if c, err := registry.DecodeCard(card[i]); err != nil || c.ONNXDigest != domain.Digest(onnx[i]) {
			t.Errorf("run %d: card digest does not match the ONNX file (err %v)", i, err)
		}
	}
	if !bytes.Equal(onnx[0], onnx[1]) {
		t.Errorf("two runs with seed 5 gave different ONNX files: %s and %s", domain.Digest(onnx[0]), domain.Digest(onnx[1]))
	}
	if !bytes.Equal(card[0], card[1]) {
		t.Errorf("two runs with seed 5 gave different cards:\n%s\n---\n%s", card[0], card[1])
	}
	for _, bad := range []string{"created_at", "duration", "CreatedAt"} {
		if bytes.Contains(card[0], []byte(bad)) {
			t.Errorf("the card mentions %q, a wall-clock field", bad)
		}
	}
}

// TestChampionChallenger: a challenger replaces no champion, is compared
// with a comparable one on the same held-out rows, and beats one of another
// feature schema by default; a second simulation of a seed is refused.
func TestChampionChallenger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.NewPool(t))
	first, err := registry.Train(ctx, st, registry.Options{Simulate: 150, Seed: 21, Pods: pods(), Config: smallConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Promoted || !strings.Contains(first.Comparison.Reason, "no model was promoted") {
		t.Errorf("first model: promoted %v, %q", first.Promoted, first.Comparison.Reason)
	}

	_, err = registry.Train(ctx, st, registry.Options{Simulate: 10, Seed: 21, Pods: pods()})
	if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(domain.ErrorMessage(err), "--seed") {
		t.Errorf("simulating seed 21 again: %v, want EINVALID naming --seed", err)
	}

	second, err := registry.Train(ctx, st, registry.Options{Simulate: 150, Seed: 22, Pods: pods(), Config: smallConfig()})
	if err != nil {
		t.Fatal(err)
	}
	cmp := second.Comparison
	if !cmp.Comparable || cmp.Champion != first.Version.Version || cmp.Rows == 0 || math.IsNaN(float64(cmp.ChampionLogLoss)) {
		t.Errorf("second model's comparison: %+v", cmp)
	}
	if second.Promoted != cmp.ChallengerWins || cmp.ChallengerWins != (cmp.ChallengerLogLoss < cmp.ChampionLogLoss) {
		t.Errorf("promoted %v with comparison %+v", second.Promoted, cmp)
	}
	if !strings.Contains(cmp.Reason, "log loss") {
		t.Errorf("reason %q does not give the log losses", cmp.Reason)
	}
	if second.Card.ChampionChallenger.Champion != first.Version.Version {
		t.Errorf("the card's comparison names champion %q", second.Card.ChampionChallenger.Champion)
	}

	// A champion of another feature schema cannot be compared: it loses.
	other, err := st.InsertModelVersion(ctx, store.ModelVersion{
		Version: "other-schema", Card: json.RawMessage(`{}`), ONNX: []byte("not really onnx"), FeatureSchema: "sha256:other",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PromoteModel(ctx, other.Version); err != nil {
		t.Fatal(err)
	}
	third, err := registry.Train(ctx, st, registry.Options{Seed: 22, Pods: pods(), Config: smallConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if !third.Existing || third.Version.Version != second.Version.Version {
		t.Errorf("the same data and seed gave %s (existing %v), not %s again", third.Version.Version, third.Existing, second.Version.Version)
	}
	if !third.Promoted || third.Comparison.Comparable || !strings.Contains(third.Comparison.Reason, "feature schema") {
		t.Errorf("against a champion of another schema: promoted %v, %+v", third.Promoted, third.Comparison)
	}
	if third.Card.DecisionQuality == nil {
		t.Errorf("no decision quality on seed 22's held-out compositions: %s", third.Card.DecisionQualityNote)
	}

	// Trained on seed 21 and 22's history, judged with seed 99: no table.
	fourth, err := registry.Train(ctx, st, registry.Options{Seed: 99, Pods: pods(), Config: smallConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if fourth.Card.DecisionQuality != nil || !strings.Contains(fourth.Card.DecisionQualityNote, "seed 99") {
		t.Errorf("seed 99: decision quality %+v, note %q", fourth.Card.DecisionQuality, fourth.Card.DecisionQualityNote)
	}
}

// TestFloatNaN: NaN metrics (AUC of one class) encode as null and back.
func TestFloatNaN(t *testing.T) {
	c := &registry.Card{Metrics: registry.CardModels{MLP: registry.CardMetrics{AUC: registry.Float(math.NaN()), LogLoss: 0.5}}}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"auc": null`)) || !bytes.HasSuffix(b, []byte("}\n")) {
		t.Errorf("NaN AUC encoded as:\n%s", b)
	}
	back, err := registry.DecodeCard(b)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(back.Metrics.MLP.AUC)) || back.Metrics.MLP.LogLoss != 0.5 {
		t.Errorf("decoded %+v", back.Metrics.MLP)
	}
	again, _ := back.Encode()
	if !bytes.Equal(again, b) {
		t.Errorf("encoding is not stable:\n%s\n---\n%s", b, again)
	}
}
