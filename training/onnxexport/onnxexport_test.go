package onnxexport_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/training/nn"
	"github.com/snapcompose/snapcompose/training/onnxexport"
)

func mlp(rng *rand.Rand, f int, hidden ...int) *nn.Network {
	n := &nn.Network{Kind: "mlp", Mean: make([]float64, f), Std: make([]float64, f)}
	for i := range f {
		n.Mean[i] = rng.NormFloat64() * 10
		n.Std[i] = 0.5 + rng.Float64()*5
	}
	in := f
	for _, h := range append(hidden, 1) {
		l := nn.Layer{In: in, Out: h, W: make([]float64, in*h), B: make([]float64, h), Activation: nn.ReLU}
		for i := range l.W {
			l.W[i] = rng.NormFloat64() / math.Sqrt(float64(in))
		}
		for i := range l.B {
			l.B[i] = rng.NormFloat64() * 0.1
		}
		n.Layers = append(n.Layers, l)
		in = h
	}
	n.Layers[len(n.Layers)-1].Activation = nn.Sigmoid
	return n
}

func meta(f int) onnxexport.Metadata {
	names := make([]string, f)
	for i := range names {
		names[i] = fmt.Sprintf("f%02d", i)
	}
	return onnxexport.Metadata{
		FeatureSchemaHash: "sha256:" + strings.Repeat("ab", 32),
		FeatureNames:      names,
		ModelVersion:      "2025.06.01-1",
		TrainerVersion:    "trainer-0.1",
	}
}

func TestMarshalDeterministicAndReadable(t *testing.T) {
	t.Parallel()
	n := mlp(rand.New(rand.NewPCG(1, 2)), 12, 16)
	a, err := onnxexport.Marshal(n, meta(12))
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnxexport.Marshal(mlp(rand.New(rand.NewPCG(1, 2)), 12, 16), meta(12))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same network and metadata gave different bytes")
	}
	info, err := onnxexport.Inspect(a)
	if err != nil {
		t.Fatal(err)
	}
	if info.IRVersion != 8 || len(info.Opsets) != 1 || info.Opsets[""] != 17 {
		t.Errorf("IR %d, opsets %v; want IR 8 and {\"\": 17}", info.IRVersion, info.Opsets)
	}
	want := map[string]string{
		"feature_schema_hash": "sha256:" + strings.Repeat("ab", 32),
		"feature_names":       "f00,f01,f02,f03,f04,f05,f06,f07,f08,f09,f10,f11",
		"model_version":       "2025.06.01-1",
		"trainer_version":     "trainer-0.1",
	}
	if fmt.Sprint(info.Metadata) != fmt.Sprint(want) {
		t.Errorf("metadata %v, want %v", info.Metadata, want)
	}
	md, err := onnxexport.ReadMetadata(a)
	if err != nil || fmt.Sprint(md) != fmt.Sprint(want) {
		t.Errorf("ReadMetadata = %v, %v", md, err)
	}
	sig := func(vs []onnxexport.Value) string {
		var s []string
		for _, v := range vs {
			s = append(s, fmt.Sprintf("%s:%d:%v", v.Name, v.ElemType, v.Dims))
		}
		return strings.Join(s, " ")
	}
	if got := sig(info.Inputs); got != "features:1:[{0 false batch} {12 true }]" {
		t.Errorf("inputs %s", got)
	}
	if got := sig(info.Outputs); got != "score:1:[{0 false batch} {1 true }]" {
		t.Errorf("outputs %s", got)
	}
}

func TestMarshalRefusesBadInput(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	good := mlp(rng, 4, 3)
	bad := mlp(rng, 4, 3)
	bad.Layers[1].Activation = nn.ReLU
	tests := []struct {
		name string
		n    *nn.Network
		m    onnxexport.Metadata
		want string
	}{
		{"invalid network", bad, meta(4), "sigmoid"},
		{"no hash", good, onnxexport.Metadata{FeatureNames: meta(4).FeatureNames}, "hash"},
		{"too few names", good, meta(3), "3 feature names"},
		{"comma in a name", good, func() onnxexport.Metadata { m := meta(4); m.FeatureNames[2] = "a,b"; return m }(), "a,b"},
	}
	for _, tt := range tests {
		if _, err := onnxexport.Marshal(tt.n, tt.m); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestFoldScalerIsExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	n := mlp(rng, 12, 16)
	w, b := onnxexport.FoldScaler(n)
	l := n.Layers[0]
	for range 100 {
		x := make([]float64, 12)
		for i := range x {
			x[i] = n.Mean[i] + rng.NormFloat64()*n.Std[i]*2
		}
		for o := range l.Out {
			want, got := l.B[o], b[o]
			for i := range l.In {
				want += l.W[o*l.In+i] * (x[i] - n.Mean[i]) / n.Std[i]
				got += w[o*l.In+i] * x[i]
			}
			if math.Abs(want-got) > 1e-9 {
				t.Fatalf("row %d: folded %v, reference %v", o, got, want)
			}
		}
	}
}

func TestReadMetadataRefusesCorruptBytes(t *testing.T) {
	t.Parallel()
	good, err := onnxexport.Marshal(mlp(rand.New(rand.NewPCG(7, 8)), 12, 16), meta(12))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 200 {
		junk := make([]byte, 64+rng.IntN(4096))
		for j := range junk {
			junk[j] = byte(rng.UintN(256))
		}
		if md, err := onnxexport.ReadMetadata(junk); err == nil {
			t.Errorf("random bytes %d read as a model with metadata %v", i, md)
		}
	}
	for _, cut := range []int{0, 1, 10, len(good) / 3, len(good) / 2, len(good) - 200, len(good) - 1} {
		if md, err := onnxexport.ReadMetadata(good[:cut]); err == nil {
			t.Errorf("model cut to %d of %d bytes read with metadata %v", cut, len(good), md)
		}
	}
	// Whatever the cut, a prefix never reads as the whole metadata.
	for cut := range len(good) {
		if md, err := onnxexport.ReadMetadata(good[:cut]); err == nil && len(md) == 4 {
			t.Fatalf("model cut to %d of %d bytes reads as complete", cut, len(good))
		}
	}
}
