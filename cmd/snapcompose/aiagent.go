package main

import (
	"context"
	"flag"
	"os"
	"strings"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
)

// defaultModel is the model AI_AGENT loads when neither --model nor
// SNAPCOMPOSE_MODEL names one: the one `make model` writes.
const defaultModel = "model/negotiator.onnx"

// agentFlags are the AI_AGENT settings plan and serve share.
type agentFlags struct {
	model   string
	margin  float64
	threads int
}

func (m *Main) addAgentFlags(fs *flag.FlagSet, f *agentFlags) {
	fs.StringVar(&f.model, "model", "", "AI_AGENT's ONNX model `file` (default $SNAPCOMPOSE_MODEL, else "+defaultModel+")")
	fs.Float64Var(&f.margin, "ambiguous-margin", agent.DefaultAmbiguousMargin,
		"mark an AI_AGENT choice ambiguous when its score beats the best alternative's by less than this `margin` (0 to 1; 0 never)")
	fs.IntVar(&f.threads, "intra-op-threads", 1, "onnxruntime intra-op `threads` per scoring Run (1 suits many concurrent requests)")
}

// check validates the flags, naming the one at fault.
func (f *agentFlags) check() error {
	if f.margin < 0 || f.margin > 1 {
		return domain.Errorf(domain.EINVALID, "--ambiguous-margin: %v is outside [0, 1]", f.margin)
	}
	if f.threads < 1 || f.threads > 256 {
		return domain.Errorf(domain.EINVALID, "--intra-op-threads: %d: want 1 to 256", f.threads)
	}
	return nil
}

// modelPath is --model, else $SNAPCOMPOSE_MODEL, else defaultModel.
func (m *Main) modelPath(f agentFlags) string {
	if f.model != "" {
		return f.model
	}
	if p := m.getenv("SNAPCOMPOSE_MODEL"); p != "" {
		return p
	}
	return defaultModel
}

// ortLibrary is $ONNXRUNTIME_LIB, else the copy `make onnxruntime` cached.
func (m *Main) ortLibrary() string {
	if p := m.getenv("ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	if p := agent.CachedLibrary(); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// loadAgent loads the model and returns the AI_AGENT resolver scoring with
// it through a Reloader (so a promoted model can replace it). Any failure
// (library, file, schema) is EUNAVAILABLE, naming what is wrong: AI_AGENT
// never falls back to another strategy.
func (m *Main) loadAgent(f agentFlags, history func(context.Context) (map[domain.SourceRef]features.SourceHistory, error)) (*agent.Learned, *agent.Reloader, error) {
	path := m.modelPath(f)
	lib, err := agent.InitRuntime(m.ortLibrary())
	if err != nil {
		return nil, nil, domain.Errorf(domain.EUNAVAILABLE, "AI_AGENT is unavailable: %s", trimAgent(err))
	}
	model, err := agent.LoadModel(path, agent.ModelOptions{
		Library: lib, SchemaHash: features.SchemaHash(), Features: features.Count, IntraOpThreads: f.threads,
	})
	if err != nil {
		if f.model != "" {
			// The user named the file: bad input.
			return nil, nil, domain.Errorf(domain.EINVALID, "--model: AI_AGENT cannot use it: %s", trimAgent(err))
		}
		return nil, nil, domain.Errorf(domain.EUNAVAILABLE, "AI_AGENT is unavailable: %s", trimAgent(err))
	}
	r := agent.NewReloader(model)
	margin := f.margin
	if margin == 0 {
		margin = -1 // never ambiguous
	}
	return agent.NewLearned(r, agent.LearnedOptions{History: history, AmbiguousMargin: margin}), r, nil
}

// trimAgent drops the package prefix from an agent error for the CLI.
func trimAgent(err error) string {
	return strings.TrimPrefix(err.Error(), "agent: ")
}
