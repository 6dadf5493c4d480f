// Package registry trains the agent's model from the history in Postgres,
// registers it with its model card as a challenger, and promotes it when it
// beats the current champion on the same held-out data (see Train). It also
// exports a registered model and its card to files (see Export).
//
// Everything a card holds is deterministic for the same history, seed and
// configuration: no wall-clock times, durations, database ids or uuids, and
// JSON objects written from structs, never from maps. So `make model`, which
// trains on a freshly simulated history, reproduces the committed
// model/negotiator.onnx and model/negotiator.card.json byte for byte.
package registry

import (
	"bytes"
	"encoding/json"
	"math"

	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/train"
)

// TrainerVersion versions the training procedure (trainer, card and
// registry logic); it goes into the card and the ONNX file's
// producer_version. Change it when a change of the pipeline changes models.
const TrainerVersion = "snapcompose-trainer/1"

// File names Export writes.
const (
	ONNXFile = "negotiator.onnx"
	CardFile = "negotiator.card.json"
)

// Card is the model card: what a model is, what it was trained on and how
// well it does. It is stored with the model version and written beside the
// exported ONNX file.
type Card struct {
	ModelVersion   string `json:"model_version"`
	Kind           string `json:"kind"`        // logistic or mlp
	KindReason     string `json:"kind_reason"` // why this kind was picked
	TrainerVersion string `json:"trainer_version"`
	Seed           uint64 `json:"seed"`

	Features CardFeatures `json:"features"`
	Data     CardData     `json:"data"`
	Config   CardConfig   `json:"config"`
	Split    CardSplit    `json:"split"`

	// Metrics are both models' on the test split; the chosen model's
	// carry its calibration bins.
	Metrics  CardModels   `json:"metrics"`
	Training CardTraining `json:"training"`

	// DecisionQuality is the simulator's ground truth judging each
	// policy's choices on the held-out compositions; nil, with
	// DecisionQualityNote saying why, when the history holds none that
	// the simulator can replay.
	DecisionQuality     *CardQuality `json:"decision_quality"`
	DecisionQualityNote string       `json:"decision_quality_note,omitempty"`

	// ChampionChallenger is how this model fared against the model that
	// was promoted when it was trained.
	ChampionChallenger Comparison `json:"champion_challenger"`

	ONNXDigest    string `json:"onnx_digest"` // sha256:… of the ONNX file
	ONNXIRVersion int64  `json:"onnx_ir_version"`
	ONNXOpset     int64  `json:"onnx_opset"`
	ONNXInput     string `json:"onnx_input"`
	ONNXOutput    string `json:"onnx_output"`

	// Network is the model itself, as the trainer's forward pass runs it:
	// a later training run scores it on its own held-out rows to decide
	// whether to replace it.
	Network *nn.Network `json:"network"`
}

// CardFeatures identifies the feature vector.
type CardFeatures struct {
	Version    int      `json:"version"`
	SchemaHash string   `json:"schema_hash"`
	Names      []string `json:"names"`
}

// CardData describes the training data. It holds no wall-clock times (the
// training run in the registry records when the compositions were made).
type CardData struct {
	Compositions     int    `json:"compositions"`
	Rows             int    `json:"rows"`
	Positives        int    `json:"positives"`
	FirstComposition string `json:"first_composition"` // by name
	LastComposition  string `json:"last_composition"`
	// From and To are the requested window of composition creation
	// times, RFC 3339; empty when open.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Simulated is how many compositions this run simulated into the
	// history before training (with Seed), 0 when it simulated none.
	Simulated int `json:"simulated,omitempty"`
	// Origins splits the history trained on into real and simulated
	// compositions, with their weights, and scores the model on the real
	// held-out decisions; nil when all of it was simulated.
	Origins *CardOrigins `json:"origins,omitempty"`
}

// CardOrigins is the history by origin.
type CardOrigins struct {
	Real         CardOrigin   `json:"real"`
	Simulated    CardOrigin   `json:"simulated"`
	RealTest     *CardMetrics `json:"real_test,omitempty"`
	RealTestRows int          `json:"real_test_rows,omitempty"`
}

// CardOrigin is the part of the history of one origin.
type CardOrigin struct {
	Compositions int `json:"compositions"`
	Rows         int `json:"rows"`
	Weight       int `json:"weight"` // how many times each of its decisions counted
}

// CardConfig is the training configuration.
type CardConfig struct {
	TestFraction       float64 `json:"test_fraction"`
	ValidationFraction float64 `json:"validation_fraction"`
	Hidden             []int   `json:"hidden"`
	LearningRate       float64 `json:"learning_rate"`
	L2                 float64 `json:"l2"`
	BatchSize          int     `json:"batch_size"`
	MaxEpochs          int     `json:"max_epochs"`
	Patience           int     `json:"patience"`
	// EMRounds is how many rounds of expectation-maximisation over the
	// noisy-AND outcome model followed the first fit (pipeline.Fit).
	EMRounds int `json:"em_rounds"`
}

// CardSplit sizes the split by composition.
type CardSplit struct {
	Train      CardPart `json:"train"`
	Validation CardPart `json:"validation"`
	Test       CardPart `json:"test"`
}

// CardPart is one part of the split.
type CardPart struct {
	Compositions int `json:"compositions"`
	Rows         int `json:"rows"`
}

// CardModels holds one entry per model kind.
type CardModels struct {
	Logistic CardMetrics `json:"logistic"`
	MLP      CardMetrics `json:"mlp"`
}

// CardMetrics are a model's test metrics.
type CardMetrics struct {
	Rows        int       `json:"rows"`
	Positives   int       `json:"positives"`
	AUC         Float     `json:"auc"` // null when the test rows have one class
	LogLoss     Float     `json:"log_loss"`
	Brier       Float     `json:"brier"`
	Accuracy    Float     `json:"accuracy"`
	Calibration []CardBin `json:"calibration,omitempty"`
}

// CardBin is one calibration bin.
type CardBin struct {
	Lo            float64 `json:"lo"`
	Hi            float64 `json:"hi"`
	Count         int     `json:"count"`
	MeanPredicted Float   `json:"mean_predicted"`
	Observed      Float   `json:"observed"`
}

// CardTraining says how each model's training went.
type CardTraining struct {
	Logistic CardHistory `json:"logistic"`
	MLP      CardHistory `json:"mlp"`
}

// CardHistory is a train.History without its wall time.
type CardHistory struct {
	Epochs      int    `json:"epochs"`
	BestEpoch   int    `json:"best_epoch"`
	BestValLoss Float  `json:"best_validation_log_loss"`
	Stop        string `json:"stop"`
}

// CardQuality is the decision-quality table.
type CardQuality struct {
	// Compositions is how many held-out compositions were replayed.
	Compositions int    `json:"compositions"`
	Seed         uint64 `json:"seed"` // of the simulator that replayed them
	// Policies in table order: FIRST_WIN, LAST_WIN, PRIORITY, oracle,
	// then the networks by name.
	Policies []PolicySuccess `json:"policies"`
	// Chosen names the policy of the chosen model ("logistic" or "mlp"),
	// what AI_AGENT serves.
	Chosen string `json:"chosen"`
}

// PolicySuccess is a policy's mean ground-truth success rate.
type PolicySuccess struct {
	Policy  string `json:"policy"`
	Success Float  `json:"success"`
}

// Success returns the success rate of policy, NaN when absent.
func (q *CardQuality) Success(policy string) float64 {
	if q == nil {
		return math.NaN()
	}
	for _, p := range q.Policies {
		if p.Policy == policy {
			return float64(p.Success)
		}
	}
	return math.NaN()
}

// Comparison is the champion/challenger verdict.
type Comparison struct {
	// Champion is the version that was promoted, "" when none was.
	Champion string `json:"champion,omitempty"`
	// Comparable says whether the champion could be scored on the
	// challenger's test rows (same feature schema, network in its card).
	Comparable bool `json:"comparable"`
	// Rows is the number of held-out rows both were scored on: the test
	// rows of compositions newer than the champion (UnseenByChampion)
	// when there are enough of them, else all the test rows.
	Rows              int   `json:"rows,omitempty"`
	UnseenByChampion  bool  `json:"unseen_by_champion,omitempty"`
	ChallengerLogLoss Float `json:"challenger_log_loss"`
	ChampionLogLoss   Float `json:"champion_log_loss"` // null when not comparable
	// ChallengerWins is the verdict of the comparison alone.
	ChallengerWins bool `json:"challenger_wins"`
	// Forced says the challenger was promoted whatever the verdict.
	Forced bool `json:"forced,omitempty"`
	// Reason says why, in words.
	Reason string `json:"reason"`
}

// Float is a float64 that encodes NaN and ±Inf as JSON null (and decodes
// null as NaN), so an AUC on a one-class test split does not break a card.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// Encode returns the card's canonical bytes: indented JSON with a trailing
// newline. Decoding them (or the card as Postgres stores it) and encoding
// again gives the same bytes.
func (c *Card) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeCard parses a card.
func DecodeCard(b []byte) (*Card, error) {
	var c Card
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func cardMetrics(m train.Metrics, calibration bool) CardMetrics {
	c := CardMetrics{
		Rows: m.N, Positives: m.Positives,
		AUC: Float(m.AUC), LogLoss: Float(m.LogLoss), Brier: Float(m.Brier), Accuracy: Float(m.Accuracy),
	}
	if calibration {
		for _, b := range m.Calibration {
			c.Calibration = append(c.Calibration, CardBin{Lo: b.Lo, Hi: b.Hi, Count: b.Count,
				MeanPredicted: Float(b.MeanPredicted), Observed: Float(b.Observed)})
		}
	}
	return c
}

func cardHistory(h train.History) CardHistory {
	return CardHistory{Epochs: h.Epochs, BestEpoch: h.BestEpoch, BestValLoss: Float(h.BestValLoss), Stop: h.Stop}
}

func cardConfig(c train.Config) CardConfig {
	return CardConfig{
		TestFraction: c.TestFraction, ValidationFraction: c.ValidationFraction, Hidden: c.Hidden,
		LearningRate: c.LearningRate, L2: c.L2, BatchSize: c.BatchSize, MaxEpochs: c.MaxEpochs, Patience: c.Patience,
	}
}

func cardPart(ix train.Indices) CardPart {
	return CardPart{Compositions: len(ix.Groups), Rows: len(ix.Rows)}
}

// ChosenMetrics returns the test metrics of the card's chosen model.
func (c *Card) ChosenMetrics() CardMetrics {
	if c.Kind == "mlp" {
		return c.Metrics.MLP
	}
	return c.Metrics.Logistic
}
