// Package onnxexport writes an nn.Network as an ONNX model (IR 8, opset 17)
// and reads back what the scorer checks before it trusts a model file.
//
// The ModelProto is written by hand with protowire, by field number, so the
// module needs no generated ONNX protos. Field numbers are those of
// onnx/onnx.proto:
//
//	ModelProto          ir_version=1 producer_name=2 producer_version=3 domain=4
//	                    model_version=5 doc_string=6 graph=7 opset_import=8
//	                    metadata_props=14
//	OperatorSetIdProto  domain=1 version=2
//	GraphProto          node=1 name=2 initializer=5 doc_string=10 input=11 output=12
//	NodeProto           input=1 output=2 name=3 op_type=4 attribute=5
//	AttributeProto      name=1 f=2 i=3 type=20 (FLOAT=1, INT=2)
//	TensorProto         dims=1 data_type=2 (FLOAT=1) name=8 raw_data=9
//	ValueInfoProto      name=1 type=2
//	TypeProto           tensor_type=1
//	TypeProto.Tensor    elem_type=1 shape=2
//	TensorShapeProto    dim=1
//	  .Dimension        dim_value=1 dim_param=2
//	StringStringEntry   key=1 value=2
//
// The graph is: input features[batch, F] float32, then per layer one Gemm
// (transB=1, so W is stored Out×In exactly as nn keeps it) and its
// activation (Relu, Sigmoid, or nothing for identity), ending in
// score[batch, 1]. The standard scaler is folded into the first Gemm.
package onnxexport

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/snapcompose/snapcompose/training/nn"
)

// What the graph and its file are called and promise.
const (
	IRVersion    = 8
	OpsetVersion = 17
	InputName    = "features"
	OutputName   = "score"
	BatchParam   = "batch"
)

// Metadata property keys written into ModelProto.metadata_props.
const (
	KeyFeatureSchemaHash = "feature_schema_hash"
	KeyFeatureNames      = "feature_names"
	KeyModelVersion      = "model_version"
	KeyTrainerVersion    = "trainer_version"
)

// ONNX enum values used here.
const (
	elemFloat     = 1 // TensorProto.DataType FLOAT
	attrTypeFloat = 1 // AttributeProto.AttributeType FLOAT
	attrTypeInt   = 2 // AttributeProto.AttributeType INT
)

// Metadata is what the model file says about itself besides the graph.
type Metadata struct {
	// FeatureSchemaHash identifies the feature vector the network was
	// trained on, e.g. "sha256:…"; serving refuses a model whose hash is
	// not the one its build extracts.
	FeatureSchemaHash string
	// FeatureNames name the F inputs in order; there must be exactly F and
	// none may contain a comma (they are stored comma-joined).
	FeatureNames []string
	// ModelVersion names this trained model, e.g. "2025.06.01-1".
	ModelVersion string
	// Producer is ModelProto.producer_name; "snapcompose-trainer" if empty.
	Producer string
	// TrainerVersion is ModelProto.producer_version and the
	// trainer_version property.
	TrainerVersion string
	// Doc, if set, is appended to the generated doc_string.
	Doc string
}

// Marshal returns the ONNX ModelProto bytes for n. The output depends only
// on n and meta: the same inputs give the same bytes.
func Marshal(n *nn.Network, meta Metadata) ([]byte, error) {
	if n == nil {
		return nil, fmt.Errorf("onnxexport: no network")
	}
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("onnxexport: %w", err)
	}
	f := n.Inputs()
	if meta.FeatureSchemaHash == "" {
		return nil, fmt.Errorf("onnxexport: no feature schema hash")
	}
	if len(meta.FeatureNames) != f {
		return nil, fmt.Errorf("onnxexport: %d feature names for a network of %d inputs", len(meta.FeatureNames), f)
	}
	for i, name := range meta.FeatureNames {
		if name == "" || strings.ContainsAny(name, ",\n") {
			return nil, fmt.Errorf("onnxexport: feature %d has name %q: names must be non-empty, without commas or newlines", i, name)
		}
	}
	producer := meta.Producer
	if producer == "" {
		producer = "snapcompose-trainer"
	}

	graph, err := marshalGraph(n)
	if err != nil {
		return nil, err
	}

	var b []byte
	b = appendVarintField(b, 1, IRVersion)
	b = appendStringField(b, 2, producer)
	if meta.TrainerVersion != "" {
		b = appendStringField(b, 3, meta.TrainerVersion)
	}
	b = appendStringField(b, 4, "io.snapcompose")
	b = appendStringField(b, 6, docString(n, meta))
	b = appendBytesField(b, 7, graph)
	// opset_import: the default domain "" (written explicitly), version 17.
	var opset []byte
	opset = appendStringField(opset, 1, "")
	opset = appendVarintField(opset, 2, OpsetVersion)
	b = appendBytesField(b, 8, opset)
	props := [][2]string{
		{KeyFeatureSchemaHash, meta.FeatureSchemaHash},
		{KeyFeatureNames, strings.Join(meta.FeatureNames, ",")},
		{KeyModelVersion, meta.ModelVersion},
		{KeyTrainerVersion, meta.TrainerVersion},
	}
	for _, p := range props {
		var e []byte
		e = appendStringField(e, 1, p[0])
		e = appendStringField(e, 2, p[1])
		b = appendBytesField(b, 14, e)
	}
	return b, nil
}

func docString(n *nn.Network, meta Metadata) string {
	widths := []string{strconv.Itoa(n.Inputs())}
	for _, l := range n.Layers {
		widths = append(widths, strconv.Itoa(l.Out))
	}
	s := fmt.Sprintf("snapcompose candidate-resolution scorer (%s %s). Input %s[%s, %d] float32: the feature vector of schema %s, raw (the standard scaler is folded into the first Gemm). Output %s[%s, 1] float32: the probability that the composed environment is healthy with this resolution.",
		n.Kind, strings.Join(widths, "-"), InputName, BatchParam, n.Inputs(), meta.FeatureSchemaHash, OutputName, BatchParam)
	if meta.ModelVersion != "" {
		s += " Model version " + meta.ModelVersion + "."
	}
	if meta.Doc != "" {
		s += "\n\n" + meta.Doc
	}
	return s
}

// FoldScaler returns the first layer's weights and biases with the standard
// scaler folded in, so that W'x + b' = W((x-Mean)/Std) + b exactly in real
// arithmetic: W'[o][i] = W[o][i]/Std[i], b'[o] = b[o] − Σ_i W[o][i]·Mean[i]/Std[i].
// It computes in float64; the exporter rounds to float32 afterwards.
func FoldScaler(n *nn.Network) (w, b []float64) {
	l := n.Layers[0]
	w = make([]float64, len(l.W))
	b = make([]float64, l.Out)
	for o := range l.Out {
		s := l.B[o]
		for i := range l.In {
			wi := l.W[o*l.In+i] / n.Std[i]
			w[o*l.In+i] = wi
			s -= wi * n.Mean[i]
		}
		b[o] = s
	}
	return w, b
}

func marshalGraph(n *nn.Network) ([]byte, error) {
	var nodes, inits [][]byte
	prev := InputName
	for k, l := range n.Layers {
		w, bias := l.W, l.B
		if k == 0 {
			w, bias = FoldScaler(n)
		}
		wName := fmt.Sprintf("layer%d.weight", k)
		bName := fmt.Sprintf("layer%d.bias", k)
		inits = append(inits,
			tensorFloat(wName, []int64{int64(l.Out), int64(l.In)}, w),
			tensorFloat(bName, []int64{int64(l.Out)}, bias))

		last := k == len(n.Layers)-1
		gemmOut := fmt.Sprintf("layer%d.linear", k)
		if last && l.Activation == nn.Identity {
			gemmOut = OutputName
		}
		nodes = append(nodes, node(fmt.Sprintf("layer%d.gemm", k), "Gemm",
			[]string{prev, wName, bName}, []string{gemmOut},
			attrFloat("alpha", 1), attrFloat("beta", 1), attrInt("transB", 1)))
		prev = gemmOut

		var op string
		switch l.Activation {
		case nn.ReLU:
			op = "Relu"
		case nn.Sigmoid:
			op = "Sigmoid"
		case nn.Identity:
			continue
		default:
			return nil, fmt.Errorf("onnxexport: layer %d has activation %q", k, l.Activation)
		}
		actOut := fmt.Sprintf("layer%d.%s", k, strings.ToLower(op))
		if last {
			actOut = OutputName
		}
		nodes = append(nodes, node(fmt.Sprintf("layer%d.%s", k, strings.ToLower(op)), op,
			[]string{prev}, []string{actOut}))
		prev = actOut
	}

	var g []byte
	for _, nd := range nodes {
		g = appendBytesField(g, 1, nd)
	}
	g = appendStringField(g, 2, "snapcompose_scorer")
	for _, t := range inits {
		g = appendBytesField(g, 5, t)
	}
	g = appendStringField(g, 10, fmt.Sprintf("%s network, %d layers; scaler folded into layer0.", n.Kind, len(n.Layers)))
	g = appendBytesField(g, 11, valueInfo(InputName, n.Inputs()))
	g = appendBytesField(g, 12, valueInfo(OutputName, 1))
	return g, nil
}

// tensorFloat is a TensorProto of float32 values in raw_data.
func tensorFloat(name string, dims []int64, v []float64) []byte {
	var t []byte
	for _, d := range dims {
		t = appendVarintField(t, 1, uint64(d))
	}
	t = appendVarintField(t, 2, elemFloat)
	t = appendStringField(t, 8, name)
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(x)))
	}
	return appendBytesField(t, 9, raw)
}

func node(name, op string, in, out []string, attrs ...[]byte) []byte {
	var b []byte
	for _, s := range in {
		b = appendStringField(b, 1, s)
	}
	for _, s := range out {
		b = appendStringField(b, 2, s)
	}
	b = appendStringField(b, 3, name)
	b = appendStringField(b, 4, op)
	for _, a := range attrs {
		b = appendBytesField(b, 5, a)
	}
	return b
}

func attrInt(name string, v int64) []byte {
	var b []byte
	b = appendStringField(b, 1, name)
	b = appendVarintField(b, 3, uint64(v))
	return appendVarintField(b, 20, attrTypeInt)
}

func attrFloat(name string, v float32) []byte {
	var b []byte
	b = appendStringField(b, 1, name)
	b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, math.Float32bits(v))
	return appendVarintField(b, 20, attrTypeFloat)
}

// valueInfo is a float tensor of shape [batch, width].
func valueInfo(name string, width int) []byte {
	var batch, cols, shape, tensor, typ, vi []byte
	batch = appendStringField(batch, 2, BatchParam)
	cols = appendVarintField(cols, 1, uint64(width))
	shape = appendBytesField(shape, 1, batch)
	shape = appendBytesField(shape, 1, cols)
	tensor = appendVarintField(tensor, 1, elemFloat)
	tensor = appendBytesField(tensor, 2, shape)
	typ = appendBytesField(typ, 1, tensor)
	vi = appendStringField(vi, 1, name)
	return appendBytesField(vi, 2, typ)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
