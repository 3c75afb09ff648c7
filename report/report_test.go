package report

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
)

func TestShow(t *testing.T) {
	tests := []struct{ in, want string }{
		{"acc", "acc"},
		{"val loss", "val loss"},
		{`a "quoted" <b>`, `a "quoted" <b>`},
		{"two\nlines", `two\nlines`},
		{"rtl\u202eexe.gnp", `rtl\u202eexe.gnp`},
		{"tab\there", `tab\there`},
		{"ünïcödé", "ünïcödé"},
	}
	for _, tt := range tests {
		if got := Show(tt.in); got != tt.want {
			t.Errorf("Show(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got, want := ShowBlock("+ a\n\t-\u202eb\x00"), "+ a\n\t-\\u202eb\\x00"; got != want {
		t.Errorf("ShowBlock = %q, want %q", got, want)
	}
}

func TestSafeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"train", "train"},
		{"model.pt", "model.pt"},
		{".hidden", "_hidden"},
		{"a b;rm -rf ~", "a_b_rm_-rf__"},
		{"$(x)`y`", "__x__y_"},
		{"", "_"},
		{"ü\n", "__"},
	}
	for _, tt := range tests {
		if got := safeName(tt.in); got != tt.want {
			t.Errorf("safeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarkdownEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"acc", "acc"},
		{"a|b", `a\|b`},
		{"<script>x</script>", `&lt;script&gt;x&lt;/script&gt;`},
		{"[x](javascript:1)", `\[x\]\(javascript\:1\)`},
		{"*b* _i_ `c`", "\\*b\\* \\_i\\_ \\`c\\`"},
		{"two\nlines", `two\\nlines`},
	}
	for _, tt := range tests {
		if got := md(tt.in); got != tt.want {
			t.Errorf("md(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := fence("a ``` b ```` c"); got != "`````" {
		t.Errorf("fence = %q, want five backticks", got)
	}
}

// A history stored the way the specification says is read back from the
// manifest's bytes and drawn: one curve per metric, one line per run.
func TestHistoryCurves(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), ".cas")
	p, _ := cas.NewChunkParams(64 << 10)
	if err := cas.Init(dir, p, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	r, err := cas.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hist := []byte("{\"step\": 0, \"loss\": 2.0, \"acc\": 0.1}\n{\"step\": 50, \"loss\": 1.0}\n{\"step\": 100, \"loss\": 0.5, \"acc\": 0.9}\n")
	ids, err := r.PutObjects(ctx, hist)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"schema":"cas.manifest/v2","name":"h","metrics_history":{"digest":"` + ids[0].String() + `","size":` +
		strconv.Itoa(len(hist)) + `,"records":3,"names":["acc","loss"]}}`)
	mids, err := r.PutObjects(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{Run: RunInfo{Name: "h", Digest: mids[0]}, RNG: []RNGRow{}, Repros: []Repro{}}
	if err := rep.curves(ctx, r); err != nil {
		t.Fatal(err)
	}
	want := []Curve{
		{Name: "acc", Series: []Series{{Run: "h", Points: [][2]float64{{0, 0.1}, {100, 0.9}}}}},
		{Name: "loss", Series: []Series{{Run: "h", Points: [][2]float64{{0, 2}, {50, 1}, {100, 0.5}}}}},
	}
	if !reflect.DeepEqual(rep.Curves, want) {
		t.Fatalf("curves = %+v, want %+v", rep.Curves, want)
	}
	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "polyline" {
			for _, a := range n.Attr {
				if a.Key == "points" {
					lines = append(lines, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	// loss from 2.0 at step 0 (top left) to 0.5 at step 100 (bottom right):
	// x from 64 to 548, y within the plot area, the first point highest.
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "64.0,") || !strings.Contains(lines[1], " 548.0,") {
		t.Fatalf("polylines %q: want two, loss from x=64 to x=548", lines)
	}

	// A manifest without a history has no curves; a damaged one says why.
	v1, err := r.PutObjects(ctx, []byte(`{"schema":"cas.manifest/v1","name":"old"}`))
	if err != nil {
		t.Fatal(err)
	}
	if steps, err := loadHistory(ctx, r, v1[0]); steps != nil || err != nil {
		t.Errorf("history of a v1 manifest = %v, %v; want none", steps, err)
	}
	bad, err := r.PutObjects(ctx, []byte("{\"loss\": 1}\nnot json\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw2 := []byte(`{"schema":"cas.manifest/v2","name":"bad","metrics_history":{"digest":"` + bad[0].String() + `","size":20,"records":2,"names":["loss"]}}`)
	m2, err := r.PutObjects(ctx, raw2)
	if err != nil {
		t.Fatal(err)
	}
	rep2 := &Report{Run: RunInfo{Name: "bad", Digest: m2[0]}}
	if err := rep2.curves(ctx, r); err == nil || !strings.Contains(err.Error(), "line 2: not a JSON object") {
		t.Errorf("curves of a bad history: got %v, want line 2's error", err)
	}
	missing := digest.Of([]byte("never stored"))
	rep3 := &Report{Run: RunInfo{Name: "gone", Digest: missing}}
	if err := rep3.curves(ctx, r); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("curves of a missing manifest: got %v, want ErrNotFound", err)
	}
}

// Summaries over runs are manifest.Summarize's, seeds told apart as cas
// stats does.
func TestSummarize(t *testing.T) {
	seed := func(s int64) *int64 { return &s }
	group := []manifest.RunEntry{
		{Manifest: &manifest.Manifest{Name: "a-s1", Seeds: manifest.Seeds{Seed: seed(1)}, Metrics: map[string]float64{"acc": 0.5, "only": 1}}},
		{Manifest: &manifest.Manifest{Name: "a-s2", Seeds: manifest.Seeds{Seed: seed(2)}, Metrics: map[string]float64{"acc": 0.7}}},
		{Manifest: &manifest.Manifest{Name: "a-s3", Seeds: manifest.Seeds{Seed: seed(3)}, Metrics: map[string]float64{"acc": 0.6}}},
	}
	got, err := summarize(group, nil, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := manifest.Summarize("acc", []float64{0.5, 0.7, 0.6}, 0.01, true)
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("summarize = %+v, want only acc: %+v", got, want)
	}
	if _, err := summarize(group, []string{"only"}, 0.01); !errors.Is(err, manifest.ErrTooFewRuns) {
		t.Errorf("a metric of one run: got %v, want ErrTooFewRuns", err)
	}
}

// A reproduction whose original cannot be read here is not judged: its
// verdict line says UNCHECKED and why, not that nothing was reproduced.
func TestReproLineOriginalUnread(t *testing.T) {
	orig := digest.Of([]byte("the original run's manifest"))
	rep := &Report{OfUnread: orig}
	l := rep.reproLine()
	l.Word = stateWord(l.State)
	want := "This run reproduces " + orig.Short() + ", which cannot be read here: not judged (`cas pull " + orig.Short() + "` brings it)"
	if l.Word != "UNCHECKED" || l.Text != want {
		t.Errorf("line %s %q, want UNCHECKED %q", l.Word, l.Text, want)
	}
	if (&Report{}).reproLine().State != "none" {
		t.Error("a run neither reproduced nor a reproduction: want state none")
	}
}

// The RNG line never tells a report made with --verify to use --verify:
// when the checkpoints could not be read intact, it says so.
func TestRNGLineAfterVerifyOfDamagedBytes(t *testing.T) {
	rows := []RNGRow{{Output: "out", Checkpoint: "model.pt", Kind: "torch"}}
	cases := []struct {
		name   string
		checks []manifest.Check
		want   string
	}{
		{"not verified", nil, "1 RNG state in 1 checkpoint, as recorded (not recomputed: use --verify)"},
		{"verified, bytes damaged", []manifest.Check{{Kind: manifest.CheckArtifact, What: "output out", OK: false}},
			"1 RNG state in 1 checkpoint, as recorded (not recomputed: the checkpoints' bytes did not read intact, see bytes)"},
	}
	for _, tc := range cases {
		rep := &Report{RNG: rows, checks: tc.checks}
		if l := rep.rngLine(); l.State != "warn" || l.Text != tc.want {
			t.Errorf("%s: rng line %s %q, want warn %q", tc.name, l.State, l.Text, tc.want)
		}
	}
}
