package cli

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/cgmon/cgmon/metrics"
)

var (
	cpuColor   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	memColor   = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	limitColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// writePlot draws the execution's timeline as an SVG: CPU % of one CPU
// (top) and memory in MiB (bottom) against seconds since the start, with
// cpu.max and memory.max drawn as dashed lines where they were set.
func writePlot(w io.Writer, ex *metrics.Execution) error {
	var cpu, mem plotter.XYs
	for _, s := range ex.Samples {
		cpu = append(cpu, plotter.XY{X: s.Elapsed.Seconds(), Y: s.CPUPercent})
		if s.MemoryValid {
			mem = append(mem, plotter.XY{X: s.Elapsed.Seconds(), Y: float64(s.Memory) / mib})
		}
	}
	xmax := ex.Duration().Seconds()
	if n := len(ex.Samples); n > 0 {
		xmax = math.Max(xmax, ex.Samples[n-1].Elapsed.Seconds())
	}
	if xmax <= 0 {
		xmax = 1
	}

	var cpuLimit, memLimit float64
	if l := ex.Limits; l != nil {
		if l.CPU != nil && l.CPU.Quota != nil && *l.CPU.Quota > 0 {
			period := float64(cpuPeriod)
			if l.CPU.Period != nil && *l.CPU.Period > 0 {
				period = float64(*l.CPU.Period)
			}
			cpuLimit = float64(*l.CPU.Quota) / period * 100
		}
		if l.Memory != nil && l.Memory.Limit != nil && *l.Memory.Limit > 0 {
			memLimit = float64(*l.Memory.Limit) / mib
		}
	}

	title := fmt.Sprintf("%s (%s): %s, %.2f s", printable(ex.ID), printable(ex.Language), ex.Status, ex.Duration().Seconds())
	top, err := panel(title, "CPU (% of one CPU)", cpu, cpuColor, fmt.Sprintf("cpu.max (%.4g %%)", cpuLimit), cpuLimit, xmax)
	if err != nil {
		return err
	}
	memNote := ""
	if len(mem) == 0 && len(ex.Samples) > 0 {
		memNote = " — not sampled on this backend"
	}
	if len(ex.Samples) == 0 {
		top.Title.Text += " — no samples (shorter than one interval)"
	}
	bottom, err := panel("Memory"+memNote, "Memory (MiB)", mem, memColor, fmt.Sprintf("memory.max (%.4g MiB)", memLimit), memLimit, xmax)
	if err != nil {
		return err
	}

	const width, height = 20 * vg.Centimeter, 16 * vg.Centimeter
	c := vgsvg.New(width, height)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4, PadY: vg.Millimeter * 6}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	_, err = c.WriteTo(w)
	return err
}

// panel is one time series with an optional limit line (limit > 0).
func panel(title, ylabel string, xy plotter.XYs, col color.Color, limitLabel string, limit, xmax float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "Time since start (s)"
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = 0, xmax
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Millimeter * 2
	p.X.Tick.Marker = niceTicks{}
	p.Y.Tick.Marker = niceTicks{}
	ymax := limit
	if len(xy) > 0 {
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color = col
		l.LineStyle.Width = vg.Points(1.5)
		p.Add(l)
		for _, v := range xy {
			ymax = math.Max(ymax, v.Y)
		}
	}
	if limit > 0 {
		f := plotter.NewFunction(func(float64) float64 { return limit })
		f.LineStyle.Color = limitColor
		f.LineStyle.Width = vg.Points(1.2)
		f.LineStyle.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(f)
		p.Legend.Add(limitLabel, f)
	}
	if ymax <= 0 {
		ymax = 1
	}
	// Headroom above the highest point keeps the legend off the curves.
	p.Y.Max = ymax * 1.25
	return p, nil
}

// niceTicks puts about five major ticks at 1, 2 or 5 times a power of ten,
// labelled without trailing zeros.
type niceTicks struct{}

// Ticks implements plot.Ticker.
func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		r := math.Round(v/step) * step
		ticks = append(ticks, plot.Tick{Value: r, Label: strconv.FormatFloat(r, 'f', decimals, 64)})
		// Minor ticks halfway.
		if m := r + step/2; m <= hi {
			ticks = append(ticks, plot.Tick{Value: m})
		}
	}
	return ticks
}
