package netbench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// ErrNothingToPlot: no measurement has a throughput.
var ErrNothingToPlot = errors.New("bench: nothing to plot")

// Plot draws throughput against stream count, one line per link model
// (and variant, when there are several), both axes logarithmic, so that
// "N streams give N times one stream" is a line of slope 1. For every WAN
// model with a per-flow cap it also draws, dashed, what the model allows:
// N × the per-flow cap up to the shared link. format is svg, png or pdf.
func Plot(w io.Writer, ms []Measurement, title, format string) error {
	if !slices.Contains(PlotFormats, format) {
		return fmt.Errorf("bench: plot format %q: want one of %v", format, PlotFormats)
	}
	type series struct {
		name string
		link Link
		pts  plotter.XYs
	}
	var all []*series
	byName := map[string]*series{}
	variants := map[string]bool{}
	for _, m := range ms {
		variants[m.Variant] = true
	}
	var streams []int
	for _, m := range ms {
		if m.ThroughputBytesPerSec <= 0 || m.Streams < 1 {
			continue
		}
		name := m.Link
		if len(variants) > 1 {
			name += " " + m.Variant
		}
		s := byName[name]
		if s == nil {
			l, _ := ParseLink(m.Link)
			s = &series{name: name, link: l}
			byName[name] = s
			all = append(all, s)
		}
		s.pts = append(s.pts, plotter.XY{X: float64(m.Streams), Y: m.ThroughputBytesPerSec / (1 << 20)})
		if !slices.Contains(streams, m.Streams) {
			streams = append(streams, m.Streams)
		}
	}
	if len(all) == 0 {
		return ErrNothingToPlot
	}
	slices.Sort(streams)

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "TCP streams"
	p.Y.Label.Text = "throughput, MiB/s (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var xt plot.ConstantTicks
	for _, n := range streams {
		xt = append(xt, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	p.X.Tick.Marker = xt
	p.Y.Tick.Marker = yTicks{}
	// Bottom right: throughput grows with streams, so that corner is free.
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(8), vg.Points(8)
	p.Add(plotter.NewGrid())

	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range all {
		slices.SortFunc(s.pts, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
		l, pts, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			return err
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		l.Width = vg.Points(1.5)
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
		for _, pt := range s.pts {
			lo, hi = min(lo, pt.Y), max(hi, pt.Y)
		}
		if s.link.Kind == LinkWAN && s.link.FlowCap() > 0 {
			var ideal plotter.XYs
			for _, n := range streams {
				v := float64(s.link.FlowCap()) * float64(n)
				if s.link.Bandwidth > 0 {
					v = min(v, float64(s.link.Bandwidth))
				}
				ideal = append(ideal, plotter.XY{X: float64(n), Y: v / (1 << 20)})
				hi = max(hi, v/(1<<20))
			}
			il, err := plotter.NewLine(ideal)
			if err != nil {
				return err
			}
			il.Color, il.Dashes, il.Width = plotutil.Color(i), []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1)
			p.Add(il)
			p.Legend.Add(s.name+": limit of the model", il)
		}
	}
	p.Y.Min, p.Y.Max = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi*1.5)))
	p.X.Min, p.X.Max = float64(streams[0])/1.2, float64(streams[len(streams)-1])*1.2

	wt, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, format)
	if err != nil {
		return err
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("writing the plot: %w", err)
	}
	return nil
}

// PlotFormats are the formats Plot draws.
var PlotFormats = []string{"svg", "png", "pdf"}

// yTicks labels 1, 2 and 5 times each power of ten.
type yTicks struct{}

func (yTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				t = append(t, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
			}
		}
	}
	return t
}
