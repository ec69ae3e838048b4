package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	baselineColor = color.RGBA{R: 0x8c, G: 0x8c, B: 0x8c, A: 0xff}
	evhubColor    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	tasksColor    = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
)

// panel is one bar chart of a chart: a metric over the rows.
type panel struct {
	title string
	value func(Result) float64
}

// chart draws workload wl's results as side-by-side bar charts (rt/s, p99,
// server CPU per round trip; bytes per idle connection for the idle
// workload), evhub goroutine rows in blue, task rows in orange, baselines
// in grey, and writes
// WORKLOAD.svg and WORKLOAD.png into dir.
func (r *Report) chart(dir string, wl Workload, cfg *Config) error {
	var rows []Result
	for _, s := range serversFor(wl, cfg.Servers) {
		if res, ok := r.result(wl.Name, s.Name); ok && res.OK() {
			rows = append(rows, res)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	panels := []panel{
		{"round trips / s (thousands)", func(r Result) float64 { return r.RoundTripsPerSec / 1e3 }},
		{"p99 latency (µs)", func(r Result) float64 { return r.P99 / 1e3 }},
		{"server CPU per round trip (µs)", func(r Result) float64 { return r.ServerCPUPerRT / 1e3 }},
	}
	if wl.Mode == Idle {
		panels = []panel{{"server RSS per idle connection (bytes)", func(r Result) float64 { return r.BytesPerConn }}}
	}
	names := make([]string, len(rows))
	for i, res := range rows {
		names[i] = res.Server
	}
	plots := [][]*plot.Plot{make([]*plot.Plot, len(panels))}
	for i, pn := range panels {
		p, err := barPlot(pn, rows, names)
		if err != nil {
			return fmt.Errorf("chart %s: %w", wl.Name, err)
		}
		plots[0][i] = p
	}
	title := wl.Name + ": " + wl.Doc
	m := r.Machine
	foot := fmt.Sprintf("median of %d × %v per row; server and load generator pinned to one CPU each, GOMAXPROCS=1; %s, %s, %s, commit %s",
		cfg.Reps, cfg.Duration, m.CPU, m.Kernel, m.GoVersion, m.Commit)

	width := max(9*vg.Inch, vg.Length(len(panels))*(2.2*vg.Inch+vg.Length(len(rows))*0.32*vg.Inch))
	height := 4.4 * vg.Inch
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}

	svg := vgsvg.New(width, height)
	drawTiles(plots, tiles, draw.New(svg), title, foot)
	if err := writeFile(filepath.Join(dir, wl.Name+".svg"), svg.WriteTo); err != nil {
		return err
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	drawTiles(plots, tiles, dc, title, foot)
	return writeFile(filepath.Join(dir, wl.Name+".png"), vgimg.PngCanvas{Canvas: img}.WriteTo)
}

// summaryChart draws the figure the README shows: server CPU per round
// trip in each 64-byte ping-pong workload that ran, and bytes per idle
// connection in the largest idle workload that ran, one panel each, every
// row side by side; it writes summary.svg and summary.png into dir.
func (r *Report) summaryChart(dir string, cfg *Config) error {
	type col struct {
		wl Workload
		pn panel
	}
	var cols []col
	var idle *Workload
	for _, wl := range cfg.Workloads {
		switch {
		case wl.Mode == Idle:
			if idle == nil || wl.Conns > idle.Conns {
				idle = &wl
			}
		case wl.Proto == Echo && wl.Size == 64 && wl.Depth == 1:
			cols = append(cols, col{wl, panel{
				fmt.Sprintf("server CPU per round trip (µs), %s", plural(wl.Conns, "connection")),
				func(r Result) float64 { return r.ServerCPUPerRT / 1e3 }}})
		}
	}
	if idle != nil {
		cols = append(cols, col{*idle, panel{
			fmt.Sprintf("server RSS per idle connection (bytes), %s", plural(idle.Conns, "connection")),
			func(r Result) float64 { return r.BytesPerConn }}})
	}
	var plots []*plot.Plot
	most := 0
	for _, c := range cols {
		var rows []Result
		var names []string
		for _, s := range serversFor(c.wl, cfg.Servers) {
			if res, ok := r.result(c.wl.Name, s.Name); ok && res.OK() {
				rows = append(rows, res)
				names = append(names, res.Server)
			}
		}
		if len(rows) == 0 {
			continue
		}
		p, err := barPlot(c.pn, rows, names)
		if err != nil {
			return fmt.Errorf("summary chart: %w", err)
		}
		plots = append(plots, p)
		most = max(most, len(rows))
	}
	if len(plots) == 0 {
		return nil
	}
	m := r.Machine
	title := "evhub side by side: grey = baselines, blue = evhub (goroutines, reactor), orange = evhub tasks"
	foot := fmt.Sprintf("median of %d × %v per row; server and load generator pinned to one CPU each, GOMAXPROCS=1; %s, %s, %s, commit %s",
		cfg.Reps, cfg.Duration, m.CPU, m.Kernel, m.GoVersion, m.Commit)
	width := vg.Length(len(plots)) * (1.6*vg.Inch + vg.Length(most)*0.22*vg.Inch)
	height := 4.2 * vg.Inch
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 5, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	svg := vgsvg.New(width, height)
	drawTiles([][]*plot.Plot{plots}, tiles, draw.New(svg), title, foot)
	if err := writeFile(filepath.Join(dir, "summary.svg"), svg.WriteTo); err != nil {
		return err
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(72))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	drawTiles([][]*plot.Plot{plots}, tiles, dc, title, foot)
	return writeFile(filepath.Join(dir, "summary.png"), vgimg.PngCanvas{Canvas: img}.WriteTo)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return thousands(float64(n)) + " " + unit + "s"
}

// drawTiles draws the panels side by side under a title and above a
// footnote.
func drawTiles(plots [][]*plot.Plot, t draw.Tiles, dc draw.Canvas, title, foot string) {
	style := func(size vg.Length, ya text.YAlignment) draw.TextStyle {
		return draw.TextStyle{
			Color:   color.Black,
			Font:    font.Font{Typeface: plot.DefaultFont.Typeface, Variant: plot.DefaultFont.Variant, Size: size},
			XAlign:  draw.XCenter,
			YAlign:  ya,
			Handler: plot.DefaultTextHandler,
		}
	}
	mid := dc.Min.X + (dc.Max.X-dc.Min.X)/2
	dc.FillText(style(13, draw.YTop), vg.Point{X: mid, Y: dc.Max.Y - 2*vg.Millimeter}, title)
	dc.FillText(style(7, draw.YBottom), vg.Point{X: mid, Y: dc.Min.Y + 1.5*vg.Millimeter}, foot)
	canvases := plot.Align(plots, t, draw.Crop(dc, 0, 0, 6*vg.Millimeter, -9*vg.Millimeter))
	for i, p := range plots[0] {
		p.Draw(canvases[0][i])
	}
}

// barPlot draws one metric as bars, one per row: baselines, evhub
// goroutine rows and evhub task rows as three bar series so that each
// takes its colour.
func barPlot(pn panel, rows []Result, names []string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.title
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	base := make(plotter.Values, len(rows))
	ev := make(plotter.Values, len(rows))
	tasks := make(plotter.Values, len(rows))
	top := 0.0
	for i, res := range rows {
		v := pn.value(res)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		top = max(top, v)
		switch res.Kind {
		case Evhub.String(), EvhubReactor.String():
			ev[i] = v
		case EvhubTasks.String():
			tasks[i] = v
		default:
			base[i] = v
		}
	}
	for _, series := range []struct {
		vs plotter.Values
		c  color.Color
	}{{base, baselineColor}, {ev, evhubColor}, {tasks, tasksColor}} {
		b, err := plotter.NewBarChart(series.vs, vg.Points(14))
		if err != nil {
			return nil, err
		}
		b.Color = series.c
		b.LineStyle.Width = 0
		p.Add(b)
	}
	p.Y.Max = top * 1.1
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return p, nil
}

func writeFile(path string, fn func(io.Writer) (int64, error)) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%w", err)
	}
	if _, err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
