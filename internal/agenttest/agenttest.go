// Package agenttest loads the real onnxruntime library and the committed
// model for tests: $ONNXRUNTIME_LIB, else the Makefile's cache
// (~/.cache/snapcompose/onnxruntime-1.24.1; `make onnxruntime` fetches
// it). Without either a test skips, except under CI=true where it fails.
package agenttest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/features"
)

// Library returns the onnxruntime library tests load.
func Library(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("ONNXRUNTIME_LIB=%s: %v", p, err)
		}
		return p
	}
	if p := agent.CachedLibrary(); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("no onnxruntime library: set ONNXRUNTIME_LIB or run `make onnxruntime`")
	}
	tb.Skip("no onnxruntime library: set ONNXRUNTIME_LIB or run `make onnxruntime`")
	return ""
}

// ModelPath is the committed model, model/negotiator.onnx.
func ModelPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "model", "negotiator.onnx")
}

// Options are the options serving loads the committed model with.
func Options(tb testing.TB) agent.ModelOptions {
	return agent.ModelOptions{Library: Library(tb), SchemaHash: features.SchemaHash(), Features: features.Count}
}

// Model loads the committed model; the test closes it at its end.
func Model(tb testing.TB) *agent.Model {
	tb.Helper()
	m, err := agent.LoadModel(ModelPath(), Options(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}
