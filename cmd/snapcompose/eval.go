package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/charts"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/evalalloc"
	"github.com/snapcompose/snapcompose/training/evalagent"
	"github.com/snapcompose/snapcompose/training/registry"
	"github.com/snapcompose/snapcompose/training/simulate"
)

const evalAllocationSynopsis = "snapcompose eval allocation --usage DIR [--seed N | --seeds N,N,...] [--group-size N] " +
	"[--train-days N] [--test-days N] [--limit-factor X] [--target-overrun X] [--workers N] [--output text|json] [--plot FILE]"

const evalAgentSynopsis = "snapcompose eval agent [--model FILE] [--card FILE] [--pods FILE] [--limit N] [--output text|json] [--plot FILE]"

// evalCmd runs `eval allocation` or `eval agent`.
func (m *Main) evalCmd(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "allocation":
			return m.evalAllocation(ctx, args[1:])
		case "agent":
			return m.evalAgent(ctx, args[1:])
		}
	}
	return domain.Errorf(domain.EINVALID, "eval: want `%s` or `%s`", evalAllocationSynopsis, evalAgentSynopsis)
}

// evalAgent prints the held-out decision-quality table of the model's
// training run, replayed through the serving path (package evalagent). It
// needs no database.
func (m *Main) evalAgent(ctx context.Context, args []string) error {
	fs := m.flags("eval agent")
	var af agentFlags
	fs.StringVar(&af.model, "model", "", "the ONNX `file` to judge (default $SNAPCOMPOSE_MODEL, else "+defaultModel+")")
	card := fs.String("card", "", "its model card `file` (default: the model's path with .card.json for .onnx)")
	pods := fs.String("pods", registry.DefaultPods, "the Alibaba OpenB pod list `file` the simulator sizes services from")
	limit := fs.Int("limit", 0, "judge only the first `N` held-out compositions (0: all)")
	output := fs.String("output", "text", "output `format`: text or json")
	plotFile := fs.String("plot", "", "also draw the success rate per policy, with the oracle's as a line, into `file` (.png or .svg)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return domain.Errorf(domain.EINVALID, "--output: unknown format %q: want text or json", *output)
	}
	if err := checkPlotFile(*plotFile); err != nil {
		return err
	}
	if *limit < 0 {
		return domain.Errorf(domain.EINVALID, "--limit: %d is negative", *limit)
	}
	af.margin, af.threads = agent.DefaultAmbiguousMargin, 1
	path := m.modelPath(af)
	if *card == "" {
		*card = strings.TrimSuffix(path, ".onnx") + ".card.json"
	}
	raw, err := os.ReadFile(*card)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "--card: %s", pathError(err))
	}
	c, err := registry.DecodeCard(raw)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "--card: %s: %v", *card, err)
	}
	p, err := simulate.LoadPods(*pods)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "--pods: %v", err)
	}
	_, scorer, err := m.loadAgent(af, nil)
	if err != nil {
		return err
	}
	defer scorer.Close()
	rep, err := evalagent.Run(ctx, evalagent.Config{Card: c, Scorer: scorer, Pods: p, Limit: *limit, Progress: m.Stderr})
	if err != nil {
		return err
	}
	if *plotFile != "" {
		if err := plotAgent(rep, *plotFile); err != nil {
			return err
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return evalagent.WriteText(m.Stdout, rep)
}

// evalAllocation evaluates allocation strategies on a Bitbrains trace and
// prints the report (see package evalalloc for the method). It needs no
// database. Exit codes: 0 the report was written, 2 bad flags or a trace
// that cannot be evaluated (missing directory, no trace files, a file that
// is not a Bitbrains CSV, no VM with enough data).
func (m *Main) evalAllocation(ctx context.Context, args []string) error {
	fs := m.flags("eval allocation")
	cfg := evalalloc.DefaultConfig("")
	fs.StringVar(&cfg.Dir, "usage", "", "`dir`ectory of the Bitbrains trace: one .csv or .csv.gz file per VM (required)")
	seed := fs.Uint64("seed", 1, "`seed` of the shuffling of VMs into compositions")
	seeds := fs.String("seeds", "", "comma-separated `seeds`, each evaluated in turn, with a summary across them (instead of --seed)")
	fs.IntVar(&cfg.GroupSize, "group-size", evalalloc.DefaultGroupSize, "`number` of VMs per composition")
	fs.IntVar(&cfg.TrainDays, "train-days", evalalloc.DefaultTrainDays, "`days` of training window, from the trace's first timestamp")
	fs.IntVar(&cfg.TestDays, "test-days", evalalloc.DefaultTestDays, "`days` of held-out window, after the training window")
	fs.Float64Var(&cfg.LimitFactor, "limit-factor", evalalloc.DefaultLimitFactor, "each composition's shared limit, as a `multiple` of the peak of its training-window total")
	fs.Float64Var(&cfg.TargetOverrun, "target-overrun", evalalloc.DefaultTargetOverrun,
		"ours: the `share` of training intervals in which a composition's total may exceed its budget")
	fs.IntVar(&cfg.Workers, "workers", evalalloc.DefaultWorkers, "`number` of files read at once")
	output := fs.String("output", "text", "output `format`: text or json")
	plotFile := fs.String("plot", "", "also draw held-out slack against overrun per strategy and resource into `file` (.png or .svg; the first seed)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nEvaluates provisioned, VPA-style and our allocations of groups of trace VMs on a held-out week.\n\n",
			evalAllocationSynopsis)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return domain.Errorf(domain.EINVALID, "--output: unknown format %q: want text or json", *output)
	}
	if err := checkPlotFile(*plotFile); err != nil {
		return err
	}
	cfg.Seeds = []uint64{*seed}
	if *seeds != "" {
		seedSet := false
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "seed" {
				seedSet = true
			}
		})
		if seedSet {
			return domain.Errorf(domain.EINVALID, "--seed and --seeds: give one or the other")
		}
		list, err := parseSeeds(*seeds)
		if err != nil {
			return err
		}
		cfg.Seeds = list
	}
	rep, err := evalalloc.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *plotFile != "" {
		if err := plotAllocation(rep, *plotFile); err != nil {
			return err
		}
	}
	if *output == "json" {
		return evalalloc.WriteJSON(m.Stdout, rep)
	}
	return evalalloc.WriteText(m.Stdout, rep)
}

// parseSeeds parses a comma-separated list of seeds.
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for field := range strings.SplitSeq(s, ",") {
		field = strings.TrimSpace(field)
		n, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "--seeds: %q is not a seed: want comma-separated whole numbers, such as 1,2,3", field)
		}
		out = append(out, n)
	}
	if len(out) > 100 {
		return nil, domain.Errorf(domain.EINVALID, "--seeds: %d seeds: give at most 100", len(out))
	}
	return out, nil
}

// checkPlotFile refuses a --plot file that is not .png or .svg, before any
// work is done.
func checkPlotFile(file string) error {
	if file == "" {
		return nil
	}
	if err := charts.CheckFile(file); err != nil {
		return domain.Errorf(domain.EINVALID, "--plot: %v", err)
	}
	return nil
}

// plotAgent draws the success rate of each policy, the oracle as a line.
func plotAgent(rep *evalagent.Report, file string) error {
	var bars []charts.Bar
	oracle, ref := 0.0, ""
	for _, r := range rep.Rows {
		if r.Policy == "oracle" {
			oracle, ref = r.Success, "oracle"
			continue
		}
		bars = append(bars, charts.Bar{Label: strings.TrimSuffix(r.Policy, " (serving)"), Value: r.Success})
	}
	p, err := charts.Bars(fmt.Sprintf("Held-out compositions healthy (%d, model %s)", rep.Compositions, shortVersion(rep.ModelVersion)),
		"success rate (%)", bars, ref, oracle, true)
	if err != nil {
		return err
	}
	return savePlot(p, file)
}

// plotAllocation draws, per strategy and resource, the held-out share of
// intervals a composition's total overran against the share it left idle.
func plotAllocation(rep *evalalloc.Report, file string) error {
	if len(rep.Evaluations) == 0 {
		return domain.Errorf(domain.EINVALID, "--plot: nothing was evaluated")
	}
	ev := rep.Evaluations[0]
	var pts []charts.Point
	for _, s := range ev.Strategies {
		for _, r := range s.Resources {
			pts = append(pts, charts.Point{Group: s.Strategy, Label: r.Resource, X: r.TotalSlack, Y: r.TotalOverrun})
		}
	}
	p, err := charts.Scatter(fmt.Sprintf("Allocations on the held-out week (seed %d, %d compositions)", ev.Seed, ev.Evaluated),
		"slack: allocated but unused (%)", "overrun: intervals over the allocation (%)", pts, true)
	if err != nil {
		return err
	}
	return savePlot(p, file)
}

func savePlot(p *plot.Plot, file string) error {
	if err := charts.Save(p, file); err != nil {
		return domain.Errorf(domain.EINVALID, "--plot: %v", err)
	}
	return nil
}

func shortVersion(v string) string {
	if len(v) > 24 {
		return v[:24] + "…"
	}
	return v
}
