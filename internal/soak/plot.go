package soak

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
)

// PlotOptions say what Plot marks besides the samples.
type PlotOptions struct {
	Title string
	// Limits, when Warmup > 0, draw the end of the warm-up and the RSS
	// limit above the baseline.
	Limits Limits
	// GoalBytes, when > 0, draws the RSS goal.
	GoalBytes int64
}

// line is one series of a panel.
type line struct {
	name  string
	color string
	dash  bool
	ys    []float64
}

// mark is a horizontal line at y from x0 (seconds) to the end.
type mark struct {
	name  string
	color string
	y, x0 float64
}

type panel struct {
	title, unit string
	lines       []line
	marks       []mark
}

// Geometry of the drawing, in pixels.
const (
	plotWidth   = 960
	panelHeight = 250
	marginLeft  = 70
	marginRight = 20
	marginTop   = 70 // above each panel's plot area: the ticks of the one before, its title and legend
	marginBot   = 40 // below the last panel: the time axis label
	titleHeight = 30
)

// Plot draws samples as an SVG: memory (MiB), goroutines and open files,
// readings per second and CPU, each a panel over the run's time in minutes,
// with axes, ticks, a legend, and the warm-up, the RSS limit and the
// goal when opts name them.
func Plot(w io.Writer, samples []Sample, opts PlotOptions) error {
	if len(samples) == 0 {
		return fmt.Errorf("soak: plot: no samples")
	}
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = s.T
	}
	mib := func(get func(*Sample) int64) []float64 {
		ys := make([]float64, len(samples))
		for i := range samples {
			ys[i] = float64(get(&samples[i])) / (1 << 20)
		}
		return ys
	}
	count := func(get func(*Sample) int64) []float64 {
		ys := make([]float64, len(samples))
		for i := range samples {
			ys[i] = float64(get(&samples[i]))
		}
		return ys
	}
	rate := func(get func(*Sample) int64) []float64 {
		ys := make([]float64, len(samples))
		for i := 1; i < len(samples); i++ {
			if dt := samples[i].T - samples[i-1].T; dt > 0 {
				ys[i] = float64(get(&samples[i])-get(&samples[i-1])) / dt
			}
		}
		if len(ys) > 1 {
			ys[0] = ys[1]
		}
		return ys
	}
	mem := panel{title: "Memory", unit: "MiB", lines: []line{
		{name: "VmRSS", color: "#d62728", ys: mib(func(s *Sample) int64 { return s.RSS })},
		{name: "VmHWM (peak)", color: "#d62728", dash: true, ys: mib(func(s *Sample) int64 { return s.HWM })},
		{name: "RssAnon", color: "#ff7f0e", ys: mib(func(s *Sample) int64 { return s.RSSAnon })},
		{name: "RssFile", color: "#8c564b", ys: mib(func(s *Sample) int64 { return s.RSSFile })},
		{name: "Go runtime total", color: "#1f77b4", dash: true, ys: mib(func(s *Sample) int64 { return s.GoTotal })},
		{name: "Go heap (objects)", color: "#1f77b4", ys: mib(func(s *Sample) int64 { return s.Heap })},
	}}
	if opts.GoalBytes > 0 {
		mem.marks = append(mem.marks, mark{name: "goal " + trimFloat(float64(opts.GoalBytes)/(1<<20)) + " MiB", color: "#2ca02c", y: float64(opts.GoalBytes) / (1 << 20)})
	}
	if opts.Limits.Warmup > 0 {
		v := Judge(samples, opts.Limits)
		if v.Baseline.RSS > 0 {
			mem.marks = append(mem.marks, mark{name: fmt.Sprintf("RSS limit (+%.0f %%)", 100*opts.Limits.RSSGrowth), color: "#9467bd",
				y: float64(v.Baseline.RSS) * (1 + opts.Limits.RSSGrowth) / (1 << 20), x0: v.Baseline.T})
		}
	}
	procs := panel{title: "Goroutines and open files", unit: "count", lines: []line{
		{name: "goroutines", color: "#1f77b4", ys: count(func(s *Sample) int64 { return s.Goroutines })},
		{name: "open files (fds)", color: "#8c564b", ys: count(func(s *Sample) int64 { return s.FDs })},
	}}
	flow := panel{title: "Readings", unit: "per second", lines: []line{
		{name: "emitted", color: "#2ca02c", ys: rate(func(s *Sample) int64 { return s.ReadingsEmitted })},
		{name: "stored", color: "#1f77b4", dash: true, ys: rate(func(s *Sample) int64 { return s.ReadingsStored })},
	}}
	cpu := panel{title: "CPU", unit: "% of one core", lines: []line{
		{name: "gateway CPU", color: "#9467bd", ys: rate(func(s *Sample) int64 { return s.CPUMillis / 10 })},
	}}
	panels := []panel{mem, procs, flow, cpu}

	xmax := xs[len(xs)-1] / 60
	if xmax <= 0 {
		xmax = 1
	}
	var xticks []float64
	for _, v := range niceTicks(0, xmax, 10) {
		if v <= xmax+1e-9 {
			xticks = append(xticks, v)
		}
	}
	var warm float64 = -1
	if opts.Limits.Warmup > 0 {
		warm = opts.Limits.Warmup.Minutes()
	}

	height := titleHeight + len(panels)*(panelHeight+marginTop) + marginBot
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text class="title" x="%d" y="20" font-size="16" font-weight="bold">%s</text>`+"\n", marginLeft, esc(opts.Title))
	x0, x1 := float64(marginLeft), float64(plotWidth-marginRight)
	sx := func(t float64) float64 { return x0 + (x1-x0)*t/xmax }
	for pi, p := range panels {
		top := float64(titleHeight + pi*(panelHeight+marginTop) + marginTop)
		bot := top + panelHeight
		lo, hi := 0.0, 0.0
		for _, l := range p.lines {
			for _, y := range l.ys {
				hi = math.Max(hi, y)
			}
		}
		for _, m := range p.marks {
			hi = math.Max(hi, m.y)
		}
		if hi == 0 {
			hi = 1
		}
		yticks := niceTicks(lo, hi*1.05, 6)
		hi = yticks[len(yticks)-1]
		sy := func(v float64) float64 { return bot - (bot-top)*(v-lo)/(hi-lo) }

		fmt.Fprintf(&b, `<g class="panel" id="panel-%d">`+"\n", pi)
		fmt.Fprintf(&b, `<text class="panel-title" x="%g" y="%g" font-weight="bold">%s (%s)</text>`+"\n", x0, top-32, esc(p.title), esc(p.unit))
		// Grid and ticks.
		for _, v := range yticks {
			y := sy(v)
			fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#e5e5e5"/>`, x0, y, x1, y)
			fmt.Fprintf(&b, `<text class="ytick" x="%g" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", x0-6, y, trimFloat(v))
		}
		for _, v := range xticks {
			x := sx(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#e5e5e5"/>`, x, top, x, bot)
			fmt.Fprintf(&b, `<text class="xtick" x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x, bot+15, trimFloat(v))
		}
		// Axes.
		fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`, x0, bot, x1, bot)
		fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", x0, top, x0, bot)
		fmt.Fprintf(&b, `<text class="ylabel" transform="translate(%g %g) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0-50, (top+bot)/2, esc(p.unit))
		if warm > 0 && warm <= xmax {
			x := sx(warm)
			fmt.Fprintf(&b, `<line class="warmup" x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#7f7f7f" stroke-dasharray="4 3"/>`, x, top, x, bot)
			if pi == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%g" fill="#7f7f7f" font-size="11">end of warm-up</text>`, x+4, top+12)
			}
			b.WriteString("\n")
		}
		for mi, m := range p.marks {
			y := sy(m.y)
			fmt.Fprintf(&b, `<line class="mark" data-name="%s" x1="%.1f" y1="%.1f" x2="%g" y2="%.1f" stroke="%s" stroke-dasharray="8 4"/>`,
				esc(m.name), sx(m.x0/60), y, x1, y, m.color)
			// Labels side by side, so that close lines keep readable ones.
			fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" fill="%s" font-size="11">%s</text>`+"\n", x1-4-float64(mi)*150, y-4, m.color, esc(m.name))
		}
		for _, l := range p.lines {
			fmt.Fprintf(&b, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="1.5"`, esc(l.name), l.color)
			if l.dash {
				b.WriteString(` stroke-dasharray="6 3"`)
			}
			b.WriteString(` points="`)
			for i, y := range l.ys {
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "%.1f,%.1f", sx(xs[i]/60), sy(y))
			}
			b.WriteString(`"/>` + "\n")
		}
		// Legend, in a row above the plot area.
		lx := x0
		for _, l := range p.lines {
			fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"`, lx, top-12, lx+20, top-12, l.color)
			if l.dash {
				b.WriteString(` stroke-dasharray="6 3"`)
			}
			fmt.Fprintf(&b, `/><text class="legend" x="%g" y="%g" dominant-baseline="middle">%s</text>`+"\n", lx+24, top-12, esc(l.name))
			lx += 24 + 7.5*float64(len(l.name)) + 16
		}
		b.WriteString("</g>\n")
	}
	last := float64(titleHeight + len(panels)*(panelHeight+marginTop))
	fmt.Fprintf(&b, `<text class="xlabel" x="%g" y="%g" text-anchor="middle">time since the gateway started (min)</text>`+"\n", (x0+x1)/2, last+32)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// niceTicks returns evenly spaced round values from lo covering hi, about
// n of them.
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		step = f * mag
		if step >= raw {
			break
		}
	}
	var ts []float64
	start := math.Floor(lo/step) * step
	for i := 0; ; i++ {
		v := start + float64(i)*step
		ts = append(ts, v)
		if v >= hi-1e-9 || i > 100 {
			return ts
		}
	}
}

func trimFloat(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

func esc(s string) string { return html.EscapeString(s) }
