package onnxexport

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Info is what Inspect reads from model bytes without running anything.
type Info struct {
	IRVersion int64
	// Opsets maps each imported operator-set domain ("" is ONNX's own) to
	// its version.
	Opsets map[string]int64
	// Metadata holds ModelProto.metadata_props.
	Metadata map[string]string
	// Inputs are the graph inputs that are not initializers; Outputs the
	// graph outputs; both in file order.
	Inputs, Outputs []Value
}

// Value is a graph input or output.
type Value struct {
	Name string
	// ElemType is the TensorProto.DataType (1 is FLOAT), 0 if the value is
	// not a tensor.
	ElemType int64
	// Dims is the shape; nil if the file gives none.
	Dims []Dim
}

// Dim is one dimension: a fixed size (Value, when HasValue) or a symbolic
// name (Param), or neither when unknown.
type Dim struct {
	Value    int64
	HasValue bool
	Param    string
}

// ReadMetadata returns the metadata_props of the ONNX model in data. Bytes
// that are not a well-formed ModelProto with an IR version and a graph are
// an error.
func ReadMetadata(data []byte) (map[string]string, error) {
	info, err := Inspect(data)
	if err != nil {
		return nil, err
	}
	return info.Metadata, nil
}

// Inspect parses the parts of a ModelProto the scorer checks: IR version,
// opsets, metadata and the graph's input and output signatures. It does not
// validate the graph's nodes; onnxruntime does that when it loads the model.
func Inspect(data []byte) (*Info, error) {
	if len(data) == 0 {
		return nil, errors.New("onnx: empty model")
	}
	info := &Info{Opsets: map[string]int64{}, Metadata: map[string]string{}}
	var hasIR, hasGraph bool
	var graph []byte
	err := walk(data, "ModelProto", func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(protowire.VarintType); err != nil {
				return err
			}
			info.IRVersion, hasIR = int64(f.x), true
		case 7:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			graph, hasGraph = f.b, true
		case 8:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			var domain string
			var version int64
			if err := walk(f.b, "OperatorSetIdProto", func(g field) error {
				switch g.num {
				case 1:
					if err := g.want(protowire.BytesType); err != nil {
						return err
					}
					domain = string(g.b)
				case 2:
					if err := g.want(protowire.VarintType); err != nil {
						return err
					}
					version = int64(g.x)
				}
				return nil
			}); err != nil {
				return err
			}
			info.Opsets[domain] = version
		case 14:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			var key, value string
			if err := walk(f.b, "StringStringEntryProto", func(g field) error {
				switch g.num {
				case 1, 2:
					if err := g.want(protowire.BytesType); err != nil {
						return err
					}
					if g.num == 1 {
						key = string(g.b)
					} else {
						value = string(g.b)
					}
				}
				return nil
			}); err != nil {
				return err
			}
			if _, dup := info.Metadata[key]; dup {
				return fmt.Errorf("metadata key %q appears twice", key)
			}
			info.Metadata[key] = value
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("onnx: not a well-formed model: %w", err)
	}
	if !hasIR || !hasGraph {
		return nil, errors.New("onnx: not a model: no IR version or no graph")
	}
	if err := inspectGraph(graph, info); err != nil {
		return nil, fmt.Errorf("onnx: not a well-formed model: %w", err)
	}
	return info, nil
}

func inspectGraph(b []byte, info *Info) error {
	var inputs []Value
	initializers := map[string]bool{}
	err := walk(b, "GraphProto", func(f field) error {
		switch f.num {
		case 5, 11, 12:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
		default:
			return nil
		}
		if f.num == 5 {
			return walk(f.b, "TensorProto", func(g field) error {
				if g.num == 8 {
					if err := g.want(protowire.BytesType); err != nil {
						return err
					}
					initializers[string(g.b)] = true
				}
				return nil
			})
		}
		v, err := valueInfoOf(f.b)
		if err != nil {
			return err
		}
		if f.num == 11 {
			inputs = append(inputs, v)
		} else {
			info.Outputs = append(info.Outputs, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, v := range inputs {
		if !initializers[v.Name] {
			info.Inputs = append(info.Inputs, v)
		}
	}
	return nil
}

func valueInfoOf(b []byte) (Value, error) {
	var v Value
	err := walk(b, "ValueInfoProto", func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			v.Name = string(f.b)
		case 2: // TypeProto
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			return walk(f.b, "TypeProto", func(g field) error {
				if g.num != 1 { // tensor_type
					return nil
				}
				if err := g.want(protowire.BytesType); err != nil {
					return err
				}
				return walk(g.b, "TypeProto.Tensor", func(h field) error {
					switch h.num {
					case 1:
						if err := h.want(protowire.VarintType); err != nil {
							return err
						}
						v.ElemType = int64(h.x)
					case 2:
						if err := h.want(protowire.BytesType); err != nil {
							return err
						}
						v.Dims = []Dim{}
						return walk(h.b, "TensorShapeProto", func(s field) error {
							if s.num != 1 {
								return nil
							}
							if err := s.want(protowire.BytesType); err != nil {
								return err
							}
							var d Dim
							if err := walk(s.b, "Dimension", func(x field) error {
								switch x.num {
								case 1:
									if err := x.want(protowire.VarintType); err != nil {
										return err
									}
									d.Value, d.HasValue = int64(x.x), true
								case 2:
									if err := x.want(protowire.BytesType); err != nil {
										return err
									}
									d.Param = string(x.b)
								}
								return nil
							}); err != nil {
								return err
							}
							v.Dims = append(v.Dims, d)
							return nil
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return v, err
}

// field is one decoded protobuf field: x for varint and fixed types, b for
// length-delimited ones.
type field struct {
	msg string
	num protowire.Number
	typ protowire.Type
	x   uint64
	b   []byte
}

func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("%s field %d has wire type %d, want %d", f.msg, f.num, f.typ, t)
	}
	return nil
}

// walk calls fn for each field of the message in b, failing on malformed
// bytes.
func walk(b []byte, msg string, fn func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%s: %w", msg, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{msg: msg, num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.x = uint64(v)
		case protowire.Fixed64Type:
			f.x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default: // groups, which ONNX does not use
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%s field %d: %w", msg, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}
