package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cas-ml/cas/manifest"
)

// The pictures are plain SVG drawn by the templates in svg.tmpl from the
// geometry computed here; every label passes through html/template.

// Lineage geometry.
const (
	nodeW   = 230.0
	nodeH   = 60.0
	colGap  = 56.0
	rowGap  = 14.0
	padding = 8.0
)

// lineageSVG is the lineage picture's geometry.
type lineageSVG struct {
	W, H  float64
	Boxes []box
	Edges []edge
}

type box struct {
	Node
	X, Y  float64
	Title string // the first line, cut to fit
	Line2 string
	Line3 string
	Class string
}

type edge struct {
	D     string
	Class string
}

func (rep *Report) lineageSVG() lineageSVG {
	var g lineageSVG
	pos := func(n Node) (float64, float64) {
		return padding + float64(n.col)*(nodeW+colGap), padding + float64(n.row)*(nodeH+rowGap)
	}
	for _, n := range rep.Nodes {
		x, y := pos(n)
		g.W, g.H = max(g.W, x+nodeW+padding), max(g.H, y+nodeH+padding)
		size := ""
		if n.Size > 0 || n.Kind == NodeInput || n.Kind == NodeOutput {
			size = " · " + Size(n.Size)
		}
		g.Boxes = append(g.Boxes, box{Node: n, X: x, Y: y, Title: cut(n.Kind+" "+Show(n.Name), 30),
			Line2: n.Digest.Short() + size, Line3: cut(Show(n.Detail), 34), Class: strings.TrimSpace("node " + n.Kind + " " + n.State)})
	}
	link := func(a, b Node, class string) {
		ax, ay := pos(a)
		bx, by := pos(b)
		x1, y1, x2, y2 := ax+nodeW, ay+nodeH/2, bx, by+nodeH/2
		mid := (x1 + x2) / 2
		g.Edges = append(g.Edges, edge{D: fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", x1, y1, mid, y1, mid, y2, x2, y2), Class: class})
	}
	for _, n := range rep.Nodes {
		switch {
		case n.Into:
			link(n, rep.Nodes[rep.runNode], "edge "+n.Kind)
		case n.From >= 0:
			link(rep.Nodes[n.From], n, "edge "+n.Kind)
		}
	}
	return g
}

// cut shortens s to n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Show is how a report shows a string from a manifest: as it is when
// every character prints plainly, else with the others spelled out
// (\n, \u202e), so that a newline, a control or a right-to-left mark can
// neither hide text nor reorder it.
func Show(s string) string {
	plain := true
	for _, c := range s {
		if c == utf8.RuneError || !unicode.IsPrint(c) && c != ' ' {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// distSVG is one metric's spread over runs: its points, mean and 95 %
// interval on one axis.
type distSVG struct {
	W, H        float64
	Points      []point
	MeanX       float64
	CILo, CIHi  float64
	AxisY       float64
	Lo, Hi      string // axis end labels
	LoX, HiX    float64
	Mean        string
	CI          string
	Stats       *manifest.MetricStats
	Description string
}

type point struct {
	X, Y  float64
	Label string
}

const (
	distW = 560.0
	distH = 96.0
	axisL = 40.0
	axisR = 40.0
)

func distChart(s *manifest.MetricStats, values []labelled) distSVG {
	lo, hi := min(s.Min, s.CI95[0]), max(s.Max, s.CI95[1])
	lo, hi = spanOf(lo, hi)
	x := func(v float64) float64 { return axisL + (v-lo)/(hi-lo)*(distW-axisL-axisR) }
	g := distSVG{W: distW, H: distH, AxisY: 62, Stats: s, MeanX: x(s.Mean), CILo: x(s.CI95[0]), CIHi: x(s.CI95[1]),
		Lo: num(lo), Hi: num(hi), LoX: x(lo), HiX: x(hi), Mean: num(s.Mean),
		CI: "[" + num(s.CI95[0]) + ", " + num(s.CI95[1]) + "]"}
	for i, v := range values {
		// Points of equal value stand apart: each row a few pixels up.
		g.Points = append(g.Points, point{X: x(v.Value), Y: 50 - float64(i%5)*7, Label: v.Run + ": " + num(v.Value)})
	}
	g.Description = fmt.Sprintf("%s over %d runs: mean %s, 95 %% interval %s", Show(s.Metric), s.N, g.Mean, g.CI)
	return g
}

type labelled struct {
	Run   string
	Value float64
}

// spanOf widens [lo, hi] by a margin, and a single value to a span.
func spanOf(lo, hi float64) (float64, float64) {
	if hi <= lo || math.IsNaN(hi-lo) {
		d := math.Abs(lo) * 0.01
		if d == 0 {
			d = 1
		}
		return lo - d, hi + d
	}
	m := (hi - lo) * 0.06
	return lo - m, hi + m
}

// num formats a number as cas stats does.
func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// curveSVG is one metric's per-step curves.
type curveSVG struct {
	W, H           float64
	Name           string
	Lines          []polyline
	X0, X1, Y0, Y1 float64 // plot area
	XLo, XHi       string
	YLo, YHi       string
	Description    string
}

type polyline struct {
	Points string
	Class  string
	Run    string
	Last   string
}

const (
	curveW = 560.0
	curveH = 220.0
)

func curveChart(c Curve, primary string) curveSVG {
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			xlo, xhi = min(xlo, p[0]), max(xhi, p[0])
			ylo, yhi = min(ylo, p[1]), max(yhi, p[1])
		}
	}
	if xhi <= xlo {
		xhi = xlo + 1
	}
	ylo, yhi = spanOf(ylo, yhi)
	g := curveSVG{W: curveW, H: curveH, Name: c.Name, X0: 64, X1: curveW - 12, Y0: 12, Y1: curveH - 30,
		XLo: num(xlo), XHi: num(xhi), YLo: num(ylo), YHi: num(yhi)}
	for _, s := range c.Series {
		var b strings.Builder
		for i, p := range s.Points {
			if i > 0 {
				b.WriteByte(' ')
			}
			px := g.X0 + (p[0]-xlo)/(xhi-xlo)*(g.X1-g.X0)
			py := g.Y1 - (p[1]-ylo)/(yhi-ylo)*(g.Y1-g.Y0)
			fmt.Fprintf(&b, "%.1f,%.1f", px, py)
		}
		class := "series"
		if s.Run == primary {
			class = "series primary"
		}
		last := ""
		if n := len(s.Points); n > 0 {
			last = fmt.Sprintf("step %s: %s", num(s.Points[n-1][0]), num(s.Points[n-1][1]))
		}
		g.Lines = append(g.Lines, polyline{Points: b.String(), Class: class, Run: s.Run, Last: last})
	}
	g.Description = fmt.Sprintf("%s over steps %s to %s", Show(c.Name), g.XLo, g.XHi)
	return g
}

func strconvG(v float64, prec int) string { return strconv.FormatFloat(v, 'g', prec, 64) }

// ShowBlock is Show for text shown as a block (a diff): lines and tabs
// stay, every other character that does not print plainly (a control, a
// right-to-left override that could reorder code) is spelled out.
func ShowBlock(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\n' || c == '\t' || c == ' ' || c != utf8.RuneError && unicode.IsPrint(c):
			b.WriteRune(c)
		default:
			q := strconv.QuoteRuneToASCII(c)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
