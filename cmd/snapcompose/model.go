package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/features"
	"github.com/snapcompose/snapcompose/training/registry"
)

const modelSynopsis = "snapcompose model list | model promote VERSION | model export VERSION|promoted --out DIR"

// modelCmd manages the model registry in DATABASE_URL. Exit codes: 0 done,
// 2 bad arguments or an unknown version, 1 a database failure.
func (m *Main) modelCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return domain.Errorf(domain.EINVALID, "model: want `%s`", modelSynopsis)
	}
	switch args[0] {
	case "list":
		return m.modelList(ctx, args[1:])
	case "promote":
		return m.modelPromote(ctx, args[1:])
	case "export":
		return m.modelExport(ctx, args[1:])
	}
	return domain.Errorf(domain.EINVALID, "model: unknown action %q: want `%s`", args[0], modelSynopsis)
}

// modelList prints every model version, newest first.
func (m *Main) modelList(ctx context.Context, args []string) error {
	fs := m.flags("model list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := m.openStore(ctx, "model list")
	if err != nil {
		return err
	}
	defer st.Close()
	versions, err := st.ListModelVersions(ctx)
	if err != nil {
		return err
	}
	if len(versions) == 0 {
		fmt.Fprintln(m.Stdout, "no model versions: `snapcompose train` trains one (--simulate N to bootstrap from the simulator)")
		return nil
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tKIND\tFEATURE SCHEMA\tCREATED\tPROMOTED\tTEST AUC\tTEST LOG LOSS\tDECISION QUALITY")
	current := features.SchemaHash()
	for _, v := range versions {
		// The metrics column: the chosen model's test metrics and its
		// decision quality (registry.Train writes it).
		var met struct {
			Kind            string                `json:"kind"`
			Test            registry.CardMetrics  `json:"test"`
			DecisionQuality *registry.CardQuality `json:"decision_quality"`
		}
		auc, ll, quality := "-", "-", "-"
		if json.Unmarshal(v.Metrics, &met) == nil && met.Kind != "" {
			auc, ll = num(float64(met.Test.AUC), 4), num(float64(met.Test.LogLoss), 4)
			if q := met.DecisionQuality; q != nil {
				quality = fmt.Sprintf("%s on %d held out", pct(q.Success(q.Chosen)), q.Compositions)
			}
		}
		promoted := ""
		if v.Promoted {
			promoted = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, dash(met.Kind), modelSchemaNote(v.FeatureSchema, current),
			v.CreatedAt.UTC().Format(time.RFC3339), promoted, auc, ll, quality)
	}
	return tw.Flush()
}

func num(v float64, prec int) string {
	if v != v { // NaN
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// modelPromote makes a version the one that serves.
func (m *Main) modelPromote(ctx context.Context, args []string) error {
	fs := m.flags("model promote")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return domain.Errorf(domain.EINVALID, "model promote: name one version: `snapcompose model promote VERSION` (`snapcompose model list` lists them)")
	}
	version := positional[0]
	st, err := m.openStore(ctx, "model promote")
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.PromoteModelBy(ctx, version, "cli", "snapcompose model promote"); err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return domain.Errorf(domain.ENOTFOUND, "model promote: model version %q does not exist (`snapcompose model list` lists them)", version)
		}
		return err
	}
	fmt.Fprintf(m.Stdout, "promoted %s\n", version)
	versions, err := st.ListModelVersions(ctx)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if v.Version == version && v.FeatureSchema != features.SchemaHash() {
			fmt.Fprintf(m.Stderr, "snapcompose: warning: %s was trained on feature schema %s, this build extracts %s: this build's AI_AGENT will refuse it\n",
				version, v.FeatureSchema, features.SchemaHash())
		}
	}
	return nil
}

// modelExport writes a version's ONNX file and card into a directory.
func (m *Main) modelExport(ctx context.Context, args []string) error {
	fs := m.flags("model export")
	out := fs.String("out", "", "`dir`ectory to write "+registry.ONNXFile+" and "+registry.CardFile+" into (required)")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return domain.Errorf(domain.EINVALID, "model export: name one version, or promoted: `snapcompose model export VERSION|promoted --out DIR`")
	}
	if *out == "" {
		return domain.Errorf(domain.EINVALID, "model export: --out DIR is required")
	}
	st, err := m.openStore(ctx, "model export")
	if err != nil {
		return err
	}
	defer st.Close()
	ex, err := registry.Export(ctx, st, positional[0], *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "exported %s (%s) to %s and %s\n", ex.Version.Version, ex.Version.ONNXDigest, ex.ONNXPath, ex.CardPath)
	return nil
}
