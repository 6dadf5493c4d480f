// Package charts draws snapcompose's pictures with gonum.org/v1/plot: the
// evaluation plots of `snapcompose eval` and the dashboard's charts, as
// SVG or PNG.
package charts

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Size of a chart unless said otherwise.
const (
	Width  = 16 * vg.Centimeter
	Height = 10 * vg.Centimeter
)

// Bar is one labelled value of a bar chart.
type Bar struct {
	Label string
	Value float64
}

// Bars draws values as vertical bars with their labels below, and, when
// refName is not "", a dashed horizontal reference line at ref (such as the
// oracle's success rate). Values in [0, 1] are drawn as percentages when
// percent is set.
func Bars(title, yLabel string, bars []Bar, refName string, ref float64, percent bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	scale := 1.0
	if percent {
		scale = 100
	}
	vs := make(plotter.Values, len(bars))
	names := make([]string, len(bars))
	for i, b := range bars {
		vs[i], names[i] = b.Value*scale, b.Label
	}
	bc, err := plotter.NewBarChart(vs, vg.Points(28))
	if err != nil {
		return nil, err
	}
	bc.Color = plotutil.Color(0)
	bc.LineStyle.Width = 0
	p.Add(bc, plotter.NewGrid())
	p.NominalX(names...)
	if slices.ContainsFunc(names, func(n string) bool { return len(n) > 9 }) {
		p.X.Tick.Label.Rotation = math.Pi / 5
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	p.Y.Min = 0
	top := slices.Max(append([]float64{ref * scale}, vs...))
	p.Y.Max = top * 1.12
	if refName != "" {
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: ref * scale}, {X: float64(len(bars)) - 0.5, Y: ref * scale}})
		if err != nil {
			return nil, err
		}
		line.Color = color.RGBA{R: 200, A: 255}
		line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s %s", refName, number(ref*scale, percent)), line)
		p.Legend.Top = true
	}
	labels, err := plotter.NewLabels(valueLabels{vs, percent})
	if err != nil {
		return nil, err
	}
	p.Add(labels)
	return p, nil
}

// valueLabels puts each bar's value just above it.
type valueLabels struct {
	vs      plotter.Values
	percent bool
}

func (v valueLabels) Len() int                    { return len(v.vs) }
func (v valueLabels) XY(i int) (float64, float64) { return float64(i) - 0.25, v.vs[i] }
func (v valueLabels) Label(i int) string          { return number(v.vs[i], v.percent) }

func number(v float64, percent bool) string {
	if percent {
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// Point is a labelled point of a scatter, in a named group (one colour and
// glyph per group).
type Point struct {
	Group, Label string
	X, Y         float64
}

// Scatter draws points by group with their labels beside them; x and y
// values in [0, 1] are drawn as percentages when percent is set.
func Scatter(title, xLabel, yLabel string, points []Point, percent bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	scale := 1.0
	if percent {
		scale = 100
	}
	p.Add(plotter.NewGrid())
	var groups []string
	for _, pt := range points {
		if !slices.Contains(groups, pt.Group) {
			groups = append(groups, pt.Group)
		}
	}
	var all plotter.XYLabels
	at := map[[2]int]int{} // points within a hair of each other share one label
	for gi, g := range groups {
		var xys plotter.XYs
		for _, pt := range points {
			if pt.Group != g {
				continue
			}
			xy := plotter.XY{X: pt.X * scale, Y: pt.Y * scale}
			xys = append(xys, xy)
			key := [2]int{int(xy.X * 2), int(xy.Y * 20)}
			if i, ok := at[key]; ok {
				if !strings.Contains(all.Labels[i], pt.Label) {
					all.Labels[i] += ", " + pt.Label
				}
				continue
			}
			at[key] = len(all.XYs)
			all.XYs = append(all.XYs, xy)
			all.Labels = append(all.Labels, " "+pt.Label)
		}
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = plotutil.Color(gi)
		s.GlyphStyle.Shape = plotutil.Shape(gi)
		s.GlyphStyle.Radius = vg.Points(4)
		p.Add(s)
		p.Legend.Add(g, s)
	}
	if len(all.XYs) > 0 {
		labels, err := plotter.NewLabels(all)
		if err != nil {
			return nil, err
		}
		p.Add(labels)
	}
	p.X.Min, p.Y.Min = 0, 0
	p.Legend.Top = true
	return p, nil
}

// Series is a named line over time.
type Series struct {
	Name   string
	Points []TimePoint
}

// TimePoint is one value at a time.
type TimePoint struct {
	At    time.Time
	Value float64
}

// Lines draws series over time, one colour each, with points marked;
// values in [0, 1] are drawn as percentages when percent is set.
func Lines(title, yLabel string, series []Series, percent bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	p.X.Tick.Marker = plot.TimeTicks{Format: "Jan 02"}
	p.Add(plotter.NewGrid())
	scale := 1.0
	if percent {
		scale = 100
		p.Y.Min, p.Y.Max = 0, 100
	}
	for i, s := range series {
		xys := make(plotter.XYs, len(s.Points))
		for j, tp := range s.Points {
			xys[j] = plotter.XY{X: float64(tp.At.Unix()), Y: tp.Value * scale}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		p.Add(l, pts)
		p.Legend.Add(s.Name, l, pts)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

// WriteSVG writes p as SVG of the given size.
func WriteSVG(w io.Writer, p *plot.Plot, width, height vg.Length) error {
	wt, err := p.WriterTo(width, height, "svg")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// CheckFile refuses a file Save cannot write: one not ending in .png or
// .svg.
func CheckFile(file string) error {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".png", ".svg":
		return nil
	}
	return fmt.Errorf("%s: want a file ending in .png or .svg", file)
}

// Save writes p to file, as PNG or SVG by its extension.
func Save(p *plot.Plot, file string) error {
	if err := CheckFile(file); err != nil {
		return err
	}
	return p.Save(Width, Height, file)
}

// Empty is a chart saying there is nothing to draw yet.
func Empty(title, why string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.HideAxes()
	labels, _ := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{{X: 0, Y: 0}}, Labels: []string{why}})
	labels.TextStyle[0].XAlign = draw.XCenter
	p.Add(labels)
	return p
}
