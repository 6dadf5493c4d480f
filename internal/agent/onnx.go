package agent

// The learned agent's scorer: an ONNX model (training/onnxexport writes it)
// run by onnxruntime through github.com/yalue/onnxruntime_go, which loads
// the C library at run time (the Makefile's `make onnxruntime` fetches it;
// ONNXRUNTIME_LIB points at it). One session per model, all candidates of a
// composition scored in one Run, safe for concurrent use; a Reloader swaps
// models without disturbing requests in flight.

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/snapcompose/snapcompose/training/onnxexport"
)

// ErrModelClosed is returned by Score on a model that was closed, e.g.
// after a Reloader swapped it out.
var ErrModelClosed = errors.New("model is closed")

// CachedLibrary returns where `make onnxruntime` keeps the library
// (~/.cache/snapcompose/onnxruntime-1.24.1/libonnxruntime.so.1), or "" when
// the home directory is unknown.
func CachedLibrary() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "snapcompose", "onnxruntime-1.24.1", "libonnxruntime.so.1")
}

// ModelOptions configure LoadModel.
type ModelOptions struct {
	// Library is the onnxruntime shared library (libonnxruntime.so.1 of
	// onnxruntime 1.24.1). Empty means $ONNXRUNTIME_LIB. The first
	// successful load fixes it for the process; a later load naming
	// another library is an error.
	Library string
	// SchemaHash is the feature schema this build extracts, e.g.
	// "sha256:…". A model trained on another schema is refused before any
	// session is created. Required.
	SchemaHash string
	// Features, if positive, is the width of the feature vector this build
	// extracts; a model whose input width differs is refused.
	Features int
	// IntraOpThreads is onnxruntime's intra-op thread count per Run;
	// 0 means 1 (requests run concurrently instead).
	IntraOpThreads int
}

// Model is one loaded ONNX scoring model.
type Model struct {
	path     string
	opt      ModelOptions
	features int
	meta     map[string]string

	// mu guards session: Score holds it shared for the whole Run, Close
	// exclusively, so a session is never destroyed under a Run.
	mu      sync.RWMutex
	session *ort.DynamicAdvancedSession
}

// ortEnv is the process's onnxruntime environment: ORT has one per
// process, initialised from one library.
var ortEnv struct {
	sync.Mutex
	library string // absolute path, set once initialised
}

// InitRuntime loads the onnxruntime library once per process ("" means
// $ONNXRUNTIME_LIB) and returns its absolute path. LoadModel calls it; call
// it first to tell a missing library from a bad model.
func InitRuntime(library string) (string, error) {
	if library == "" {
		library = os.Getenv("ONNXRUNTIME_LIB")
	}
	if library == "" {
		return "", errors.New("agent: no onnxruntime library: set ONNXRUNTIME_LIB (or ModelOptions.Library) to libonnxruntime.so.1; `make onnxruntime` fetches it")
	}
	abs, err := filepath.Abs(library)
	if err != nil {
		return "", fmt.Errorf("agent: onnxruntime library %s: %w", library, err)
	}
	ortEnv.Lock()
	defer ortEnv.Unlock()
	if ortEnv.library != "" {
		if ortEnv.library != abs {
			return "", fmt.Errorf("agent: onnxruntime is already loaded from %s in this process; cannot load %s as well", ortEnv.library, abs)
		}
		return abs, nil
	}
	if ort.IsInitialized() {
		return "", fmt.Errorf("agent: onnxruntime was initialised outside package agent; cannot load %s", abs)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("agent: onnxruntime library %s: %w (`make onnxruntime` fetches it, or set ONNXRUNTIME_LIB)", abs, bare(err))
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("agent: onnxruntime library %s is not a regular file", abs)
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		// A failed dlopen leaves nothing behind, so a later load may try
		// another library.
		return "", fmt.Errorf("agent: cannot load onnxruntime library %s: %w", abs, err)
	}
	ortEnv.library = abs
	return abs, nil
}

// LoadModel loads the ONNX model at path for scoring. It checks, in order:
// the onnxruntime library loads; the file exists and is a well-formed ONNX
// model; its feature_schema_hash is opt.SchemaHash; its graph takes
// features[batch, F] float32 (F the number of feature_names, and
// opt.Features if set) and gives score[batch, 1]; onnxruntime accepts it
// and it scores a row. Every failure names the file or library.
func LoadModel(path string, opt ModelOptions) (*Model, error) {
	if opt.SchemaHash == "" {
		return nil, fmt.Errorf("agent: loading model %s: no feature schema hash to check it against", path)
	}
	if opt.IntraOpThreads < 0 {
		return nil, fmt.Errorf("agent: loading model %s: %d intra-op threads", path, opt.IntraOpThreads)
	}
	lib, err := InitRuntime(opt.Library)
	if err != nil {
		return nil, err
	}
	opt.Library = lib

	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent: model %s: %w", path, bare(err))
	}
	info, err := onnxexport.Inspect(data)
	if err != nil {
		return nil, fmt.Errorf("agent: model %s is not a valid ONNX model: %w", path, err)
	}
	hash, ok := info.Metadata[onnxexport.KeyFeatureSchemaHash]
	if !ok || hash == "" {
		return nil, fmt.Errorf("agent: model %s has no %s in its metadata, so its feature schema is unknown", path, onnxexport.KeyFeatureSchemaHash)
	}
	if hash != opt.SchemaHash {
		return nil, fmt.Errorf("agent: model %s was trained on feature schema %s but this build extracts %s", path, hash, opt.SchemaHash)
	}
	f, err := checkSignature(info, opt)
	if err != nil {
		return nil, fmt.Errorf("agent: model %s: %w", path, err)
	}

	threads := opt.IntraOpThreads
	if threads == 0 {
		threads = 1
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("agent: model %s: session options: %w", path, err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("agent: model %s: %d intra-op threads: %w", path, threads, err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("agent: model %s: inter-op threads: %w", path, err)
	}
	session, err := ort.NewDynamicAdvancedSessionWithONNXData(data,
		[]string{onnxexport.InputName}, []string{onnxexport.OutputName}, so)
	if err != nil {
		return nil, fmt.Errorf("agent: onnxruntime (%s) cannot load model %s: %w", lib, path, err)
	}
	m := &Model{path: path, opt: opt, features: f, meta: info.Metadata, session: session}
	// Run it once, so a model that loads but cannot run fails here and not
	// on the first request.
	probe, err := m.Score(make([]float32, f), 1)
	if err == nil && !(probe[0] >= 0 && probe[0] <= 1) {
		err = fmt.Errorf("score %v for a zero row is not a probability", probe[0])
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("agent: model %s does not score: %w", path, err)
	}
	return m, nil
}

// bare drops the path an *fs.PathError repeats, as the message names it.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkSignature returns F after checking the graph's input and output
// against what Score feeds and reads.
func checkSignature(info *onnxexport.Info, opt ModelOptions) (int, error) {
	var names []string
	for _, v := range info.Inputs {
		names = append(names, v.Name)
	}
	if len(info.Inputs) != 1 || info.Inputs[0].Name != onnxexport.InputName {
		return 0, fmt.Errorf("inputs are %q, want exactly %q", names, onnxexport.InputName)
	}
	in := info.Inputs[0]
	if in.ElemType != 1 || len(in.Dims) != 2 || !in.Dims[1].HasValue || in.Dims[1].Value <= 0 || in.Dims[1].Value > math.MaxInt32 {
		return 0, fmt.Errorf("input %q is %s, want float32 [batch, F]", in.Name, describe(in))
	}
	f := int(in.Dims[1].Value)
	if in.Dims[0].HasValue {
		return 0, fmt.Errorf("input %q is %s: its batch dimension is fixed, want a symbolic one", in.Name, describe(in))
	}
	var out *onnxexport.Value
	for i := range info.Outputs {
		if info.Outputs[i].Name == onnxexport.OutputName {
			out = &info.Outputs[i]
		}
	}
	if out == nil {
		return 0, fmt.Errorf("no output %q", onnxexport.OutputName)
	}
	if out.ElemType != 1 || len(out.Dims) != 2 || !out.Dims[1].HasValue || out.Dims[1].Value != 1 {
		return 0, fmt.Errorf("output %q is %s, want float32 [batch, 1]", out.Name, describe(*out))
	}
	if names, ok := info.Metadata[onnxexport.KeyFeatureNames]; ok {
		if n := len(strings.Split(names, ",")); n != f {
			return 0, fmt.Errorf("input %q has %d features but the metadata names %d", in.Name, f, n)
		}
	}
	if opt.Features > 0 && opt.Features != f {
		return 0, fmt.Errorf("input %q has %d features but this build extracts %d", in.Name, f, opt.Features)
	}
	return f, nil
}

func describe(v onnxexport.Value) string {
	dims := make([]string, len(v.Dims))
	for i, d := range v.Dims {
		switch {
		case d.HasValue:
			dims[i] = fmt.Sprint(d.Value)
		case d.Param != "":
			dims[i] = d.Param
		default:
			dims[i] = "?"
		}
	}
	return fmt.Sprintf("element type %d [%s]", v.ElemType, strings.Join(dims, ", "))
}

// Score returns the score of each of rows feature vectors, given row-major
// in features (len rows×Features()), in one onnxruntime Run. It is safe
// for concurrent use.
func (m *Model) Score(features []float32, rows int) ([]float32, error) {
	if rows < 0 || len(features) != rows*m.features {
		return nil, fmt.Errorf("agent: model %s: %d values for %d rows of %d features", m.path, len(features), rows, m.features)
	}
	if rows == 0 {
		return []float32{}, nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.session == nil {
		return nil, fmt.Errorf("agent: model %s: %w", m.path, ErrModelClosed)
	}
	in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(m.features)), features)
	if err != nil {
		return nil, fmt.Errorf("agent: model %s: input tensor: %w", m.path, err)
	}
	defer in.Destroy()
	scores := make([]float32, rows)
	out, err := ort.NewTensor(ort.NewShape(int64(rows), 1), scores)
	if err != nil {
		return nil, fmt.Errorf("agent: model %s: output tensor: %w", m.path, err)
	}
	defer out.Destroy()
	if err := m.session.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		return nil, fmt.Errorf("agent: model %s: %w", m.path, err)
	}
	return scores, nil
}

// Features is the width F of one feature vector.
func (m *Model) Features() int { return m.features }

// Path is the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// Metadata returns a copy of the model's metadata_props.
func (m *Model) Metadata() map[string]string {
	c := make(map[string]string, len(m.meta))
	for k, v := range m.meta {
		c[k] = v
	}
	return c
}

// Close waits for Runs in flight and destroys the session. Score on a
// closed model returns ErrModelClosed. Close is idempotent.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return nil
	}
	err := m.session.Destroy()
	m.session = nil
	if err != nil {
		return fmt.Errorf("agent: closing model %s: %w", m.path, err)
	}
	return nil
}

// Reloader holds the model requests use and replaces it while serving:
// after Swap or Reload new requests use the new model, Runs in flight on the
// old one complete, and the old one is closed once none uses it.
type Reloader struct {
	mu  sync.Mutex // serialises Swap, Reload and Close
	cur atomic.Pointer[Model]
}

// NewReloader serves m until it is swapped.
func NewReloader(m *Model) *Reloader {
	r := &Reloader{}
	r.cur.Store(m)
	return r
}

// Current is the model new requests use, nil after Close.
func (r *Reloader) Current() *Model { return r.cur.Load() }

// Score scores with the current model (see Model.Score). A request that
// picks a model just as it is swapped out runs on its replacement.
func (r *Reloader) Score(features []float32, rows int) ([]float32, error) {
	for {
		m := r.cur.Load()
		if m == nil {
			return nil, fmt.Errorf("agent: scorer: %w", ErrModelClosed)
		}
		s, err := m.Score(features, rows)
		if err != nil && errors.Is(err, ErrModelClosed) && r.cur.Load() != m {
			continue
		}
		return s, err
	}
}

// Swap makes m the current model and closes the previous one once the Runs
// in flight on it are done (Swap waits for them). m must extract the same
// features as the current model; otherwise the current one stays and Swap
// returns an error.
func (r *Reloader) Swap(m *Model) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.swapLocked(m)
}

func (r *Reloader) swapLocked(m *Model) error {
	if m == nil {
		return errors.New("agent: swap to no model")
	}
	old := r.cur.Load()
	if old == nil {
		return fmt.Errorf("agent: swap to model %s: the scorer is closed", m.path)
	}
	if old == m {
		return nil
	}
	oh, nh := old.meta[onnxexport.KeyFeatureSchemaHash], m.meta[onnxexport.KeyFeatureSchemaHash]
	if oh != nh || old.features != m.features {
		return fmt.Errorf("agent: model %s extracts feature schema %s (%d features), but the current model %s extracts %s (%d)",
			m.path, nh, m.features, old.path, oh, old.features)
	}
	r.cur.Store(m)
	return old.Close()
}

// Reload loads the model at path with the current model's options and
// swaps to it. If it does not load or pass the checks, the current model
// stays and the error is returned.
func (r *Reloader) Reload(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cur.Load()
	if old == nil {
		return fmt.Errorf("agent: reload %s: the scorer is closed", path)
	}
	m, err := LoadModel(path, old.opt)
	if err != nil {
		return err
	}
	if err := r.swapLocked(m); err != nil {
		if r.cur.Load() != m {
			m.Close()
		}
		return err
	}
	return nil
}

// Close closes the current model (after its Runs in flight); Score then
// returns ErrModelClosed.
func (r *Reloader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.cur.Swap(nil); m != nil {
		return m.Close()
	}
	return nil
}
