// Package planview writes plans for people (text, in the manner of a
// Terraform or Nomad plan) and for programs (JSON, the contract in
// plan.schema.json). Both are byte-identical for identical plans.
package planview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// WriteJSON writes p as indented JSON followed by a newline.
func WriteJSON(w io.Writer, p *domain.Plan) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("encoding plan: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// WriteText writes p for a person to read.
func WriteText(w io.Writer, p *domain.Plan) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "snapcompose plan %q, strategy %s\n", p.Name, p.Strategy)

	section(&b, "Sources", len(p.Sources))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range p.Sources {
		tags := "-"
		if len(s.Tags) > 0 {
			tags = strings.Join(s.Tags, ",")
		}
		fmt.Fprintf(tw, "  %s\tpriority %d\ttags %s\t%s, %s, %s\n", s.Ref, s.Priority, tags,
			plural(s.Services, "service"), plural(s.Env, "env var"), plural(s.Files, "file"))
	}
	tw.Flush()

	section(&b, "Services", len(p.Services))
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range p.Services {
		mark, note := "+", ""
		switch {
		case s.RenamedFrom != "":
			mark, note = "~", "renamed from "+s.RenamedFrom
		case len(s.SharedWith) > 0:
			mark, note = "=", "shared with "+joinRefs(s.SharedWith)
		}
		if s.Optional {
			note = strings.TrimLeft(note+", optional", ", ")
		}
		if len(s.AtMinimum) > 0 {
			note = strings.TrimLeft(note+", at minimum "+strings.Join(s.AtMinimum, ","), ", ")
		}
		needs := "-"
		if len(s.DependsOn) > 0 {
			needs = "needs " + strings.Join(s.DependsOn, ",")
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, s.Name, s.Source, s.Image, ports(s.Ports), needs, resources(s.Allocation), note)
	}
	tw.Flush()

	if len(p.Volumes) > 0 {
		section(&b, "Volumes", len(p.Volumes))
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, v := range p.Volumes {
			note := ""
			if v.RenamedFrom != "" {
				note = "renamed from " + v.RenamedFrom
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, v.Source, note)
		}
		tw.Flush()
	}

	if len(p.Env) > 0 {
		section(&b, "Environment", len(p.Env))
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, e := range p.Env {
			value := "(secret " + short(e.Digest) + ")"
			if e.Value != nil {
				value = fmt.Sprintf("%q", *e.Value)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.Name, value, e.Source)
		}
		tw.Flush()
	}

	if len(p.Files) > 0 {
		section(&b, "Files", len(p.Files))
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, f := range p.Files {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Path, f.Source, quantity.FormatBytes(f.Size), short(f.Digest))
		}
		tw.Flush()
	}

	section(&b, "Conflicts", len(p.Conflicts))
	if len(p.Conflicts) == 0 {
		b.WriteString("  none\n")
	}
	for _, c := range p.Conflicts {
		var who []string
		for _, cl := range c.Claimants {
			if cl.Owner != "" && !c.Kind.Compute() {
				who = append(who, fmt.Sprintf("%s (%s)", cl.Source, cl.Owner))
			} else {
				who = append(who, string(cl.Source))
			}
		}
		who = dedupe(who)
		fmt.Fprintf(&b, "  ! %s\n      claimed by %s\n", c.Key, strings.Join(who, " vs "))
		if r := c.Resolution; r != nil {
			winner := ""
			if r.Winner != nil {
				winner = ", winner " + string(*r.Winner)
			}
			score := ""
			if r.Score != nil {
				score = fmt.Sprintf(", score %.3f", *r.Score)
			}
			if r.Ambiguous {
				score += ", AMBIGUOUS: worth a look"
			}
			fmt.Fprintf(&b, "      -> %s%s%s\n         %s\n", r.Action, winner, score, r.Detail)
			for _, a := range r.Alternatives {
				s := ""
				if a.Score != nil {
					s = fmt.Sprintf(" (score %.3f)", *a.Score)
				}
				fmt.Fprintf(&b, "         alternative %s%s: %s\n", a.Action, s, a.Detail)
			}
		}
	}

	section(&b, "Dropped", len(p.Dropped))
	if len(p.Dropped) == 0 {
		b.WriteString("  none\n")
	}
	for _, d := range p.Dropped {
		fmt.Fprintf(&b, "  - %s (%s): %s\n", d.Name, d.Source, d.Reason)
	}

	if len(p.Concessions) > 0 {
		section(&b, "Concessions", len(p.Concessions))
		for _, c := range p.Concessions {
			if c.Granted {
				fmt.Fprintf(&b, "  v %s (%s): minimum %s -> %s; %s\n", c.Service, c.Source, resources(c.From), resources(c.To), c.Reason)
			} else {
				fmt.Fprintf(&b, "  x %s (%s): no concession; %s\n", c.Service, c.Source, c.Reason)
			}
		}
	}

	b.WriteString("\nResources\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  \tallocated\trequested\tminimum\tlimit\tuse\t\n")
	row := func(i int, name string, alloc, req, min, limit int64, format func(int64) string) {
		allocated, use, note := "-", "-", ""
		if p.Allocator != nil {
			allocated = format(alloc)
			if limit > 0 {
				use = fmt.Sprintf("%d%%", (alloc*100+limit-1)/limit)
			}
			if i < len(p.Allocator.Limits) && p.Allocator.Limits[i].Binding {
				price, unit := p.Allocator.Limits[i].ShadowPerUnit()
				note = fmt.Sprintf("  binds: one more %s is worth %.3g", unit, price)
			}
		} else if min > limit {
			note = "  OVER LIMIT at minimums"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, allocated, format(req), format(min), format(limit), use, note)
	}
	row(0, "cpu", p.Totals.CPUMillicores, p.Requested.CPUMillicores, p.Minimums.CPUMillicores, p.Limits.CPUMillicores, quantity.FormatCPU)
	row(1, "memory", p.Totals.MemoryBytes, p.Requested.MemoryBytes, p.Minimums.MemoryBytes, p.Limits.MemoryBytes, quantity.FormatBytes)
	row(2, "disk", p.Totals.DiskBytes, p.Requested.DiskBytes, p.Minimums.DiskBytes, p.Limits.DiskBytes, quantity.FormatBytes)
	tw.Flush()
	if p.Allocator != nil {
		fmt.Fprintf(&b, "  allocator: %s, total value above minimums %.4g\n", p.Allocator.Method, p.Allocator.Objective)
	}

	fit := "fits within its limits"
	if !p.Feasible {
		fit = "does NOT fit within its limits"
	}
	fmt.Fprintf(&b, "\nPlan: %s from %s, %s settled%s, %s dropped; %s.\n",
		plural(len(p.Services), "service"), plural(len(p.Sources), "source"), plural(len(p.Conflicts), "conflict"),
		byKind(p.Conflicts), fmt.Sprint(len(p.Dropped)), fit)
	_, err := w.Write(b.Bytes())
	return err
}

func section(b *bytes.Buffer, title string, n int) {
	fmt.Fprintf(b, "\n%s (%d)\n", title, n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func joinRefs(refs []domain.SourceRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func ports(ps []domain.Port) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprintf("%s %d->%d", p.Protocol, p.Host, p.Container)
	}
	return strings.Join(s, ",")
}

func resources(r domain.Resources) string {
	return fmt.Sprintf("%s/%s/%s", quantity.FormatCPU(r.CPUMillicores), quantity.FormatBytes(r.MemoryBytes), quantity.FormatBytes(r.DiskBytes))
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func byKind(conflicts []domain.Conflict) string {
	if len(conflicts) == 0 {
		return ""
	}
	counts := map[string]int{}
	for _, c := range conflicts {
		counts[string(c.Kind)]++
	}
	var kinds []string
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
