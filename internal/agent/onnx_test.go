package agent_test

// These tests run the real onnxruntime library: $ONNXRUNTIME_LIB, else the
// Makefile's cache (~/.cache/snapcompose/onnxruntime-1.24.1, `make
// onnxruntime` fetches it). Without either they skip, except under CI=true
// where they fail.
//
// onnxruntime's environment is process-global and package agent fixes its
// library at the first successful load, so the library error cases (missing
// file, a file that is not a library, none configured) run in child
// processes: TestLibraryErrors re-executes this test binary with
// -test.run=^TestLibraryErrorChild$ and SNAPCOMPOSE_ORT_CHILD set, and the
// child tries the bad library in a fresh process.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/onnxexport"
)

const (
	schemaA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	schemaB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	width   = 12
)

// ortLibrary finds the onnxruntime library the tests load.
func ortLibrary(tb testing.TB) string { return agenttest.Library(tb) }

func options(tb testing.TB) agent.ModelOptions {
	return agent.ModelOptions{Library: ortLibrary(tb), SchemaHash: schemaA, Features: width}
}

// network is a random network on width features: hidden layers of ReLU,
// then one sigmoid output; no hidden layers makes a logistic regression.
func network(seed uint64, hidden ...int) *nn.Network {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := &nn.Network{Kind: "mlp", Mean: make([]float64, width), Std: make([]float64, width)}
	if len(hidden) == 0 {
		n.Kind = "logistic"
	}
	for i := range width {
		n.Mean[i] = rng.NormFloat64() * 5
		n.Std[i] = 0.2 + rng.Float64()*4
	}
	in := width
	for _, h := range append(hidden, 1) {
		l := nn.Layer{In: in, Out: h, W: make([]float64, in*h), B: make([]float64, h), Activation: nn.ReLU}
		for i := range l.W {
			l.W[i] = rng.NormFloat64() * 1.5 / math.Sqrt(float64(in))
		}
		for i := range l.B {
			l.B[i] = rng.NormFloat64() * 0.3
		}
		n.Layers = append(n.Layers, l)
		in = h
	}
	n.Layers[len(n.Layers)-1].Activation = nn.Sigmoid
	if err := n.Validate(); err != nil {
		panic(err)
	}
	return n
}

func exportBytes(tb testing.TB, n *nn.Network, schema string) []byte {
	tb.Helper()
	names := make([]string, n.Inputs())
	for i := range names {
		names[i] = fmt.Sprintf("feature_%d", i)
	}
	b, err := onnxexport.Marshal(n, onnxexport.Metadata{
		FeatureSchemaHash: schema, FeatureNames: names, ModelVersion: "test-1", TrainerVersion: "test",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func writeFile(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

func export(tb testing.TB, n *nn.Network, schema string) string {
	tb.Helper()
	return writeFile(tb, "negotiator.onnx", exportBytes(tb, n, schema))
}

func load(tb testing.TB, path string) *agent.Model {
	tb.Helper()
	m, err := agent.LoadModel(path, options(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// rows returns n random raw feature vectors around n's scaler, row-major,
// as float32 and as the float64 rows nn.Forward takes (the same values).
func rows(net *nn.Network, seed uint64, n int) ([]float32, [][]float64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	flat := make([]float32, 0, n*width)
	var xs [][]float64
	for range n {
		x := make([]float64, width)
		for i := range x {
			v := float32(net.Mean[i] + rng.NormFloat64()*net.Std[i]*1.5)
			flat = append(flat, v)
			x[i] = float64(v)
		}
		xs = append(xs, x)
	}
	return flat, xs
}

func TestScoreMatchesForward(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		net  *nn.Network
	}{
		{"mlp 12-16-1", network(1, 16)},
		{"logistic", network(2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := export(t, tt.net, schemaA)
			m := load(t, path)
			if m.Features() != width || m.Path() != path || m.Metadata()["feature_schema_hash"] != schemaA {
				t.Fatalf("Features %d, Path %s, Metadata %v", m.Features(), m.Path(), m.Metadata())
			}
			const n = 500
			flat, xs := rows(tt.net, 3, n)
			batch, err := m.Score(flat, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(batch) != n {
				t.Fatalf("%d scores for %d rows", len(batch), n)
			}
			var worst, worstSingle float64
			lo, hi := 1.0, 0.0
			for r, x := range xs {
				want := tt.net.Forward(x)
				lo, hi = math.Min(lo, want), math.Max(hi, want)
				d := math.Abs(float64(batch[r]) - want)
				worst = math.Max(worst, d)
				if d > 1e-5 {
					t.Errorf("row %d: onnxruntime %v, nn.Forward %v (off by %g)", r, batch[r], want, d)
				}
				one, err := m.Score(flat[r*width:(r+1)*width], 1)
				if err != nil {
					t.Fatal(err)
				}
				ds := math.Abs(float64(one[0]) - float64(batch[r]))
				worstSingle = math.Max(worstSingle, ds)
				if ds > 1e-6 {
					t.Errorf("row %d: %v in a batch, %v alone", r, batch[r], one[0])
				}
			}
			if hi-lo < 0.5 {
				t.Errorf("scores span only [%v, %v]: the test network is too flat to tell", lo, hi)
			}
			t.Logf("500 rows: worst |onnxruntime − nn.Forward| %.2g, worst |batched − one-by-one| %.2g, scores in [%.3f, %.3f]", worst, worstSingle, lo, hi)
		})
	}
}

func TestScoreConcurrent(t *testing.T) {
	t.Parallel()
	net := network(4, 16)
	m := load(t, export(t, net, schemaA))
	const n = 200
	flat, _ := rows(net, 5, n)
	// Serial references for a few batch shapes.
	sizes := []int{1, 7, 64, n}
	want := map[int][]float32{}
	for _, k := range sizes {
		s, err := m.Score(flat[:k*width], k)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				k := sizes[(g+i)%len(sizes)]
				s, err := m.Score(flat[:k*width], k)
				if err != nil {
					errs <- err
					return
				}
				for r := range s {
					if s[r] != want[k][r] {
						errs <- fmt.Errorf("goroutine %d, batch %d, row %d: %v concurrently, %v serially", g, k, r, s[r], want[k][r])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestScoreInputChecks(t *testing.T) {
	t.Parallel()
	m := load(t, export(t, network(6, 4), schemaA))
	if _, err := m.Score(make([]float32, 11), 1); err == nil {
		t.Error("11 values scored as one row of 12")
	}
	if _, err := m.Score(make([]float32, 24), 3); err == nil {
		t.Error("24 values scored as 3 rows of 12")
	}
	if s, err := m.Score(nil, 0); err != nil || len(s) != 0 {
		t.Errorf("no rows: %v, %v", s, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := m.Score(make([]float32, 12), 1); !errors.Is(err, agent.ErrModelClosed) {
		t.Errorf("Score after Close: %v, want ErrModelClosed", err)
	}
}

func TestLoadModelErrors(t *testing.T) {
	t.Parallel()
	opt := options(t)
	good := exportBytes(t, network(7, 16), schemaA)
	rng := rand.New(rand.NewPCG(8, 9))
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	dir := t.TempDir()
	missing := filepath.Join(dir, "model", "negotiator.onnx")
	tests := []struct {
		name string
		path string
		opt  func(agent.ModelOptions) agent.ModelOptions
		want []string
	}{
		{name: "missing model", path: missing, want: []string{missing, "no such file"}},
		{name: "random bytes", path: writeFile(t, "junk.onnx", junk), want: []string{"junk.onnx", "not a valid ONNX model"}},
		{name: "empty file", path: writeFile(t, "empty.onnx", nil), want: []string{"empty.onnx", "not a valid ONNX model"}},
		{name: "truncated to a half", path: writeFile(t, "half.onnx", good[:len(good)/2]), want: []string{"half.onnx", "not a valid ONNX model"}},
		{name: "truncated by one byte", path: writeFile(t, "short.onnx", good[:len(good)-1]), want: []string{"short.onnx", "not a valid ONNX model"}},
		{name: "graph cut off", path: writeFile(t, "cut.onnx", good[:len(good)-300]), want: []string{"cut.onnx"}},
		{name: "wrong schema hash", path: writeFile(t, "negotiator.onnx", exportBytes(t, network(7, 16), schemaB)),
			want: []string{"negotiator.onnx was trained on feature schema " + schemaB + " but this build extracts " + schemaA}},
		{name: "wrong input name", path: writeFile(t, "renamed.onnx", bytes.ReplaceAll(good, []byte("features"), []byte("inputs_x"))),
			want: []string{"renamed.onnx", `want exactly "features"`}},
		{name: "an operator onnxruntime does not know", path: writeFile(t, "unknown-op.onnx", bytes.ReplaceAll(good, []byte("Sigmoid"), []byte("Sigmoix"))),
			want: []string{"unknown-op.onnx", "cannot load model", "Sigmoix"}},
		{name: "wrong feature count", path: writeFile(t, "wide.onnx", good),
			opt:  func(o agent.ModelOptions) agent.ModelOptions { o.Features = 10; return o },
			want: []string{"wide.onnx", "12 features but this build extracts 10"}},
		{name: "no schema hash to check", path: writeFile(t, "ok.onnx", good),
			opt:  func(o agent.ModelOptions) agent.ModelOptions { o.SchemaHash = ""; return o },
			want: []string{"ok.onnx", "no feature schema hash"}},
		{name: "a second library", path: writeFile(t, "ok2.onnx", good),
			opt: func(o agent.ModelOptions) agent.ModelOptions {
				o.Library = filepath.Join(dir, "other", "libonnxruntime.so.1")
				return o
			},
			want: []string{"already loaded from " + mustAbs(t, opt.Library), filepath.Join(dir, "other", "libonnxruntime.so.1")}},
	}
	for _, tt := range tests {
		o := opt
		if tt.opt != nil {
			o = tt.opt(o)
		}
		m, err := agent.LoadModel(tt.path, o)
		if err == nil {
			m.Close()
			t.Errorf("%s: loaded", tt.name)
			continue
		}
		t.Logf("%s: %v", tt.name, err)
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, w)
			}
		}
	}
	// The same library by another spelling of its path is not a second one.
	o := opt
	o.Library = filepath.Join(filepath.Dir(opt.Library), ".", filepath.Base(opt.Library))
	m, err := agent.LoadModel(writeFile(t, "again.onnx", good), o)
	if err != nil {
		t.Fatalf("the same library as %s: %v", o.Library, err)
	}
	m.Close()
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestLibraryErrors runs each library error in its own process (see the
// file comment), which then checks that a good library still loads.
func TestLibraryErrors(t *testing.T) {
	t.Parallel()
	good := ortLibrary(t)
	dir := t.TempDir()
	notLib := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(notLib, []byte("this is a text file, not a shared library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nowhere", "libonnxruntime.so.1")
	for _, tt := range []struct {
		name, library string
		want          []string
	}{
		{"missing library", missing, []string{"onnxruntime library " + missing, "no such file", "make onnxruntime"}},
		{"not a library", notLib, []string{"cannot load onnxruntime library " + notLib}},
		{"no library configured", "", []string{"no onnxruntime library", "ONNXRUNTIME_LIB"}},
		{"a directory", dir, []string{"onnxruntime library " + dir + " is not a regular file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestLibraryErrorChild$", "-test.v", "-test.count=1")
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "ONNXRUNTIME_LIB=") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env, "SNAPCOMPOSE_ORT_CHILD=1", "SNAPCOMPOSE_ORT_CHILD_BAD="+tt.library, "SNAPCOMPOSE_ORT_CHILD_GOOD="+good)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
			_, msg, ok := strings.Cut(string(out), "LOAD ERROR: ")
			if !ok {
				t.Fatalf("child reported no load error:\n%s", out)
			}
			msg, _, _ = strings.Cut(msg, "\n")
			t.Logf("%s: %s", tt.name, msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if !strings.Contains(string(out), "GOOD LIBRARY LOADED AFTERWARDS") {
				t.Errorf("the good library did not load after the error:\n%s", out)
			}
		})
	}
}

// TestLibraryErrorChild is TestLibraryErrors' child process.
func TestLibraryErrorChild(t *testing.T) {
	if os.Getenv("SNAPCOMPOSE_ORT_CHILD") == "" {
		t.Skip("run by TestLibraryErrors in a child process")
	}
	path := export(t, network(10, 4), schemaA)
	opt := agent.ModelOptions{Library: os.Getenv("SNAPCOMPOSE_ORT_CHILD_BAD"), SchemaHash: schemaA}
	m, err := agent.LoadModel(path, opt)
	if err == nil {
		m.Close()
		t.Fatalf("loaded with library %q", opt.Library)
	}
	fmt.Printf("LOAD ERROR: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	opt.Library = os.Getenv("SNAPCOMPOSE_ORT_CHILD_GOOD")
	m, err = agent.LoadModel(path, opt)
	if err != nil {
		t.Fatalf("the good library after the bad one: %v", err)
	}
	defer m.Close()
	if _, err := m.Score(make([]float32, width), 1); err != nil {
		t.Fatal(err)
	}
	fmt.Println("GOOD LIBRARY LOADED AFTERWARDS")
}

func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	netA, netB := network(20, 16), network(21, 16)
	pathA, pathB := export(t, netA, schemaA), export(t, netB, schemaA)
	const n = 64
	flat, _ := rows(netA, 22, n)
	ref := func(path string) []float32 {
		m := load(t, path)
		s, err := m.Score(flat, n)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	wantA, wantB := ref(pathA), ref(pathB)
	for r := range n {
		if math.Abs(float64(wantA[r]-wantB[r])) < 1e-4 {
			t.Fatalf("row %d scores %v and %v: the two models are too alike to tell apart", r, wantA[r], wantB[r])
		}
	}
	same := func(got, want []float32) bool {
		for r := range got {
			if math.Abs(float64(got[r]-want[r])) > 1e-6 {
				return false
			}
		}
		return true
	}

	first, err := agent.LoadModel(pathA, options(t))
	if err != nil {
		t.Fatal(err)
	}
	rl := agent.NewReloader(first)
	defer rl.Close()

	var stop atomic.Bool
	var calls, sawA, sawB atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				s, err := rl.Score(flat, n)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: %w", g, err)
					return
				}
				calls.Add(1)
				switch {
				case same(s, wantA):
					sawA.Add(1)
				case same(s, wantB):
					sawB.Add(1)
				default:
					errs <- fmt.Errorf("goroutine %d: scores %v are neither model's", g, s[:4])
					return
				}
			}
		}()
	}
	var retired []*agent.Model
	for i := range 20 {
		time.Sleep(5 * time.Millisecond)
		path := pathB
		if i%2 == 1 {
			path = pathA
		}
		old := rl.Current()
		if i%4 < 2 {
			err = rl.Reload(path)
		} else {
			var m *agent.Model
			if m, err = agent.LoadModel(path, options(t)); err == nil {
				err = rl.Swap(m)
			}
		}
		if err != nil {
			t.Fatalf("swap %d to %s: %v", i, path, err)
		}
		retired = append(retired, old)
	}
	time.Sleep(5 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if sawA.Load() == 0 || sawB.Load() == 0 {
		t.Errorf("%d calls: %d on A, %d on B; want both", calls.Load(), sawA.Load(), sawB.Load())
	}
	for i, m := range retired {
		if _, err := m.Score(flat, n); !errors.Is(err, agent.ErrModelClosed) {
			t.Errorf("model swapped out at %d still scores: %v", i, err)
		}
	}
	t.Logf("%d batched calls during 20 swaps: %d on A, %d on B", calls.Load(), sawA.Load(), sawB.Load())
}

func TestReloadKeepsModelOnFailure(t *testing.T) {
	t.Parallel()
	net := network(30, 8)
	m := load(t, export(t, net, schemaA))
	rl := agent.NewReloader(m)
	flat, _ := rows(net, 31, 5)
	want, err := rl.Score(flat, 5)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct{ name, path, say string }{
		{"missing", filepath.Join(t.TempDir(), "gone.onnx"), "gone.onnx"},
		{"corrupt", writeFile(t, "corrupt.onnx", []byte("not a model")), "corrupt.onnx"},
		{"other schema", export(t, network(32, 8), schemaB), schemaB},
	}
	for _, b := range bad {
		if err := rl.Reload(b.path); err == nil || !strings.Contains(err.Error(), b.say) {
			t.Errorf("%s: Reload error %v, want one saying %q", b.name, err, b.say)
		}
		if rl.Current() != m {
			t.Fatalf("%s: the current model changed", b.name)
		}
		got, err := rl.Score(flat, 5)
		if err != nil || !slicesEqual(got, want) {
			t.Fatalf("%s: after the failed reload Score = %v, %v; want %v", b.name, got, err, want)
		}
	}
	// Swap refuses a model of another feature schema too.
	other, err := agent.LoadModel(export(t, network(33, 8), schemaB), agent.ModelOptions{Library: ortLibrary(t), SchemaHash: schemaB})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := rl.Swap(other); err == nil || rl.Current() != m {
		t.Errorf("Swap to another schema: %v", err)
	}
	if err := rl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Score(flat, 5); !errors.Is(err, agent.ErrModelClosed) {
		t.Errorf("Score after Close: %v", err)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const benchCandidates = 1000

func benchModel(b *testing.B) (*agent.Model, []float32) {
	net := network(40, 16)
	m := load(b, export(b, net, schemaA))
	flat, _ := rows(net, 41, benchCandidates)
	return m, flat
}

// BenchmarkScoreBatched scores 1,000 candidates in one Run per iteration.
func BenchmarkScoreBatched(b *testing.B) {
	m, flat := benchModel(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Score(flat, benchCandidates); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchCandidates)/b.Elapsed().Seconds(), "candidates/s")
}

// BenchmarkScoreOneByOne scores the same 1,000 candidates with one Run each.
func BenchmarkScoreOneByOne(b *testing.B) {
	m, flat := benchModel(b)
	b.ResetTimer()
	for b.Loop() {
		for r := range benchCandidates {
			if _, err := m.Score(flat[r*width:(r+1)*width], 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*benchCandidates)/b.Elapsed().Seconds(), "candidates/s")
}
