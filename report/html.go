package report

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cas-ml/cas/manifest"
)

//go:embed page.tmpl svg.tmpl
var templates embed.FS

var funcs = template.FuncMap{
	"show":  Show,
	"num":   num,
	"g3":    func(v float64) string { return strconvG(v, 3) },
	"size":  Size,
	"px":    func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"add":   func(a, b float64) float64 { return a + b },
	"sub":   func(a, b float64) float64 { return a - b },
	"div":   func(a, b float64) float64 { return a / b },
	"nodeW": func() float64 { return nodeW },
	"nodeH": func() float64 { return nodeH },
	"join":  func(s []string) string { return strings.Join(s, " ") },
	"deref": func(p *int64) int64 { return *p },
	"time":  when,
	"short": func(s string) string {
		if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
			return s[i+1 : i+13]
		}
		return s
	},
	"label":      label,
	"stateWord":  stateWord,
	"relDiff":    relDiff,
	"reproduced": reproduced,
	"metricOf": func(m map[string]float64, name string) string {
		if v, ok := m[name]; ok {
			return num(v)
		}
		return "-"
	},
	"statsVerdict": statsVerdict,
}

var pageTmpl = template.Must(template.New("report").Funcs(funcs).ParseFS(templates, "page.tmpl", "svg.tmpl"))

// label names a verdict line.
func label(key string) string {
	switch key {
	case "bytes":
		return "Bytes"
	case "rng":
		return "RNG states"
	case "reproduction":
		return "Reproduction"
	case "signature":
		return "Signature"
	}
	return key
}

// stateWord is a verdict line's badge.
func stateWord(state string) string {
	switch state {
	case "ok":
		return "PASS"
	case "fail":
		return "FAIL"
	case "warn":
		return "UNCHECKED"
	}
	return "NONE"
}

// statsVerdict is the last column of cas stats --metric.
func statsVerdict(s *manifest.MetricStats) string {
	v := "no"
	switch {
	case s.SeedsDiffer && s.Within:
		v = "within"
	case s.SeedsDiffer:
		v = "wide"
	case s.Reproducible:
		v = "yes"
	}
	return fmt.Sprintf("%s (CV <= %s)", v, num(s.Tolerance))
}

// page is what the templates read: the report and its pictures.
type page struct {
	*Report
	LineageSVG  lineageSVG
	Dists       []distSVG
	CurveSVGs   []curveSVG
	SeedsDiffer bool
}

func (rep *Report) page() *page {
	p := &page{Report: rep, LineageSVG: rep.lineageSVG()}
	for _, s := range rep.Spread {
		var vals []labelled
		for _, run := range rep.Group {
			if v, ok := run.Metrics[s.Metric]; ok {
				vals = append(vals, labelled{Run: Show(run.Name), Value: v})
			}
		}
		p.Dists = append(p.Dists, distChart(s, vals))
		p.SeedsDiffer = p.SeedsDiffer || s.SeedsDiffer
	}
	for _, c := range rep.Curves {
		p.CurveSVGs = append(p.CurveSVGs, curveChart(c, rep.Run.Name))
	}
	return p
}

// HTML writes the report as one self-contained HTML page.
func (rep *Report) HTML(w io.Writer) error {
	return pageTmpl.ExecuteTemplate(w, "page", rep.page())
}

// when formats a time for a report, in UTC.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
