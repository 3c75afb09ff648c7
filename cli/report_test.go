package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/report"
)

// reportProject is a git repository with a tiny training script (the
// standard library only: seeded by CAS_SEED, it writes a checkpoint with
// its Python RNG state and two metrics; --worse lowers the accuracy) and
// a dataset, and a cas store in it.
func reportProject(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"git", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: `make deps` installs it", tool)
		}
	}
	dir := t.TempDir()
	files := map[string]string{
		"data/labels.csv": "id,label\n1,0\n2,1\n3,0\n",
		".gitignore":      "data/\nout/\n*.html\n*.md\n*.svg\n",
		"train.py": `import json, os, pickle, random, sys
seed = int(os.environ["CAS_SEED"])
random.seed(seed)
w = [random.gauss(0, 1) for _ in range(8)]
os.makedirs("out", exist_ok=True)
with open("out/model.pkl", "wb") as f:
    pickle.dump({"w": w, "python_rng_state": random.getstate()}, f)
acc = 0.5 + (abs(sum(w)) % 1.0) / 4
if "--worse" in sys.argv:
    acc -= 0.2
json.dump({"acc": round(acc, 6), "loss": round(1 - acc, 6)}, open("out/metrics.json", "w"))
`,
	}
	for name, body := range files {
		writeFile(t, filepath.Join(dir, name), []byte(body))
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-qm", "training script")
	return dir
}

// casCmd runs the cas binary bin in dir, as a user would, and returns its
// exit code and output.
func casCmd(t *testing.T, bin, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CAS_DIR=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("cas %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func mustCasCmd(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	code, out := casCmd(t, bin, dir, args...)
	if code != 0 {
		t.Fatalf("cas %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// trainArgs is cas run of the training script.
func trainArgs(extra ...string) []string {
	args := []string{"run", "--input", "data=./data", "--output", "./out", "--metrics", "out/metrics.json"}
	return append(append(args, extra...), "--", "python3", "train.py")
}

// reportWant is what a report must show.
type reportWant struct {
	verdict map[string]string // verdict line -> state (ok, fail, warn, none)
	metrics []string          // every metric name, as recorded
	spread  []string          // metrics with a distribution over runs
	nodes   []string          // "kind name" of every lineage node
	text    []string          // more text the page must hold
}

func TestReport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dozen training runs and a browser")
	}
	dir, bin := reportProject(t), buildCAS(t)
	mustCasCmd(t, bin, dir, "init")
	mustCasCmd(t, bin, dir, trainArgs("--name", "one", "--seed", "7")...)
	mustCasCmd(t, bin, dir, trainArgs("--name", "rep", "--seed", "1", "--repeat", "5")...)
	mustCas(t, dir, "keygen", "--out", filepath.Join(dir, "k"))
	mustCas(t, dir, "pin", "fig3", "one", "--sign", filepath.Join(dir, "k.key"), "--local", "-m", "Figure 3")
	if code, out := casCmd(t, bin, dir, "reproduce", "one", "--", "python3", "train.py", "--worse"); code != 4 {
		t.Fatalf("reproduce --worse: exit %d, want 4 (FAIL)\n%s", code, out)
	}
	hostile := hostileRun(t, dir)

	type reportCase struct {
		name string
		args []string
		want reportWant
		code int // the exit status: 4 when a reproduction FAILs, as cas reproduce exits
	}
	ckpt := "checkpoint model.pkl"
	cases := []reportCase{
		{"one run", []string{"one", "--no-env"}, reportWant{
			verdict: map[string]string{"signature": "warn", "bytes": "warn", "rng": "warn", "reproduction": "fail"},
			metrics: []string{"acc", "loss"},
			nodes:   []string{"input data", "run one", "output out", ckpt, "pin fig3", "reproduction one-repro-*"},
		}, 4},
		{"pinned signed run", []string{"fig3", "--verify", "--key", filepath.Join(dir, "k.pub")}, reportWant{
			verdict: map[string]string{"signature": "ok", "bytes": "ok", "rng": "ok", "reproduction": "fail"},
			metrics: []string{"acc", "loss"},
			nodes:   []string{"input data", "run one", "output out", ckpt, "pin fig3", "reproduction one-repro-*"},
			text:    []string{"Every byte verified", "signature verifies", "relative difference", "Figure 3"},
		}, 4},
		{"repeated run", []string{"rep-s3", "--no-env"}, reportWant{
			verdict: map[string]string{"signature": "none", "bytes": "warn", "rng": "warn", "reproduction": "none"},
			metrics: []string{"acc", "loss"},
			spread:  []string{"acc", "loss"},
			nodes:   []string{"input data", "run rep-s3", "output out", ckpt},
			text:    []string{"Over 5 runs", "rep-s1", "rep-s5", "95% CI (Student t)"},
		}, 0},
		{"failed reproduction", []string{"one-repro-*", "--no-env"}, reportWant{
			verdict: map[string]string{"signature": "none", "bytes": "warn", "rng": "warn", "reproduction": "fail"},
			metrics: []string{"acc", "loss"},
			nodes:   []string{"input data", "reproduces one", "run one-repro-*", "output out", ckpt},
			text:    []string{"FAIL", "metric acc is outside the tolerance"},
		}, 4},
		{"hostile strings", []string{"evil"}, hostile, 0},
	}
	// The failed reproduction's name is made of the time it ran.
	repro := ""
	runs := mustCas(t, dir, "log", "--json")
	for _, f := range strings.Split(runs, "\"") {
		if strings.HasPrefix(f, "one-repro-") {
			repro = f
		}
	}
	if repro == "" {
		t.Fatalf("no reproduction in cas log:\n%s", runs)
	}
	artifacts := artifactDir(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.args[0] = strings.ReplaceAll(tc.args[0], "one-repro-*", repro)
			for i, n := range tc.want.nodes {
				tc.want.nodes[i] = strings.ReplaceAll(n, "one-repro-*", repro)
			}
			out := filepath.Join(t.TempDir(), "report.html")
			args := append([]string{"report", "--out", out}, tc.args...)
			if code, stdout, stderr := casIn(t, dir, args...); code != tc.code {
				t.Fatalf("cas %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, tc.code, stdout, stderr)
			}
			page, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			checkPage(t, "file", string(page), tc.want)
			png := filepath.Join(artifacts, strings.ReplaceAll(tc.name, " ", "-")+".png")
			if dom, ok := browse(t, out, png); ok {
				checkPage(t, "browser DOM", dom, tc.want)
				t.Logf("screenshot: %s", png)
			}
		})
	}

	reportMarkdownHostile(t, dir)

	// The Markdown form: the same content, the pictures beside it.
	md := filepath.Join(t.TempDir(), "sweep.md")
	mustCas(t, dir, "report", "rep-s1", "--no-env", "--out", md)
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Verdict", "| acc | 5 |", "![lineage", "(sweep-lineage.svg)", "(sweep-spread-1.svg)", "(sweep-spread-2.svg)", "`cas restore blake3:"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("sweep.md lacks %q:\n%s", want, b)
		}
	}
	for _, svg := range []string{"sweep-lineage.svg", "sweep-spread-1.svg", "sweep-spread-2.svg"} {
		s, err := os.ReadFile(filepath.Join(filepath.Dir(md), svg))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(s), `<svg xmlns="http://www.w3.org/2000/svg"`) {
			t.Errorf("%s does not start as an SVG document: %.80s", svg, s)
		}
	}
}

// reportMarkdownHostile checks the Markdown of the hostile run: no markup
// and no right-to-left mark from the manifest gets through, in the
// Markdown (but for the diff, verbatim in a code block) or in the
// pictures beside it.
func reportMarkdownHostile(t *testing.T, dir string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "evil.md")
	mustCas(t, dir, "report", "evil", "--no-env", "--out", out)
	files, err := filepath.Glob(filepath.Join(filepath.Dir(out), "*"))
	if err != nil || len(files) != 2 {
		t.Fatalf("evil.md wrote %v (%v), want the Markdown and its lineage", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(f, ".md") {
			// The recorded diff is shown verbatim in a fenced code block,
			// which Markdown never reads as markup: outside it, nothing
			// may be left as it is.
			before, rest, ok := strings.Cut(text, "\n```diff\n")
			code, after, ok2 := strings.Cut(rest, "\n```\n")
			if !ok || !ok2 || !strings.Contains(code, "@@ <script>") {
				t.Fatalf("evil.md: no fenced diff holding the recorded diff:\n%s", text)
			}
			text = before + after
		}
		for _, bad := range []string{"<script", "<img", "\u202e", "\u200f"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s holds %q from the manifest as it is", filepath.Base(f), bad)
			}
		}
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "&lt;script&gt;document") {
		t.Errorf("evil.md does not show the hostile name escaped:\n%.2000s", b)
	}
}

// The numbers under the distribution are those cas stats --metric prints.
func TestReportSpreadIsStats(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five training runs")
	}
	dir, bin := reportProject(t), buildCAS(t)
	mustCasCmd(t, bin, dir, "init")
	mustCasCmd(t, bin, dir, trainArgs("--name", "rep", "--seed", "1", "--repeat", "5")...)
	stats := mustCas(t, dir, "stats", "--metric", "acc", "rep-s*", "--json")
	mustCas(t, dir, "report", "rep-s*", "--no-env", "--out", filepath.Join(dir, "r.html"))
	page, err := os.ReadFile(filepath.Join(dir, "r.html"))
	if err != nil {
		t.Fatal(err)
	}
	var s []manifest.MetricStats
	if err := json.Unmarshal([]byte(stats), &s); err != nil || len(s) != 1 {
		t.Fatalf("stats --json: %v %s", err, stats)
	}
	row := rowText(t, string(page), "spread", "acc")
	for _, v := range []float64{s[0].Mean, s[0].StdDev, s[0].CI95[0], s[0].CI95[1]} {
		want := strconv.FormatFloat(v, 'g', 6, 64)
		if !strings.Contains(row, want) {
			t.Errorf("spread row %q lacks %s (cas stats --metric: %+v)", row, want, s[0])
		}
	}
}

// hostileRun stores a run whose every text field holds markup, quotes,
// newlines and right-to-left marks, pinned with such a message; the ref
// is runs/evil.
func hostileRun(t *testing.T, dir string) reportWant {
	t.Helper()
	ctx := t.Context()
	h := "<script>document.title='PWNED'</script><img src=x onerror=\"document.title='PWNED'\">\"'\n\u202eevil\u200f|*`"
	r, err := cas.Open(ctx, filepath.Join(dir, ".cas"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Push(ctx, []string{filepath.Join(dir, "data")}, cas.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patch, err := r.PutObjects(ctx, []byte("--- a/"+h+"\n+++ b/x\n@@ "+h+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	seed := int64(3)
	m := &manifest.Manifest{Schema: manifest.Schema, Name: "run" + h, Kind: "run" + h, Tool: "cas" + h,
		Command: []string{"python3", h}, WorkDir: "/w" + h, Status: "ok" + h, Signal: h,
		Inputs: []manifest.Artifact{{Name: "in" + h, Path: "/p" + h, Digest: res.Digest, Kind: "dir" + h, Size: res.Bytes}},
		Outputs: []manifest.Artifact{{Name: "out" + h, Path: "/o" + h, Digest: res.Digest, Kind: "dir", Size: res.Bytes,
			Checkpoints: []manifest.Checkpoint{{Path: "ck" + h, Digest: res.Digest, Format: "fmt" + h, Tensors: 1,
				RNG: []manifest.RNGState{{Kind: "kind" + h, Path: "at" + h, Fingerprint: "fp" + h, Summary: "sum" + h}}}}}},
		Code: manifest.Code{Git: true, Root: "/r" + h, Commit: "c0ffee" + h, Branch: "b" + h, Remote: "https://x/" + h,
			Dirty: true, Patch: &manifest.Object{Digest: patch[0], Size: 40}, Untracked: []string{"u" + h}},
		Environment: manifest.Environment{OS: "os" + h, Kernel: "k" + h, Arch: "a" + h, Hostname: "host" + h, CPU: "cpu" + h, CPUs: 2,
			Python:         &manifest.Python{Executable: "py" + h, Version: "3" + h, NumPy: "np" + h},
			PackageManager: "pip" + h, Torch: &manifest.Torch{Version: "t" + h, CUDA: "cu" + h, CuDNN: "dnn" + h, SettingsFrom: "s" + h},
			GPUs: []manifest.GPU{{Name: "gpu" + h, Driver: "d" + h}}, Absent: []string{"abs" + h}},
		Variables:   map[string]string{"V" + h: "val" + h},
		Seeds:       manifest.Seeds{Seed: &seed},
		Metrics:     map[string]float64{"acc" + h: 0.5, "loss" + h: 0.25, "plain": 1},
		MetricsFile: "m" + h,
	}
	d, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutObjects(ctx, b); err != nil {
		t.Fatal(err)
	}
	obj := cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}
	if _, err := r.SetRef(ctx, "runs/evil", obj); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pin(ctx, nil, "evilpin", obj, cas.PinOptions{Message: "msg" + h}); err != nil {
		t.Fatal(err)
	}
	return reportWant{
		verdict: map[string]string{"signature": "warn", "bytes": "warn", "rng": "warn", "reproduction": "none"},
		metrics: []string{"acc" + h, "loss" + h, "plain"},
		nodes:   []string{"input in" + h, "run run" + h, "output out" + h, "checkpoint ck" + h, "pin evilpin"},
		text: []string{"<script>document.title='PWNED'</script>", report.Show("msg" + h), report.Show("/w" + h), report.Show("cas" + h),
			report.Show("/p" + h), report.Show("/o" + h), report.Show("sum" + h), report.Show("fp" + h), report.Show("c0ffee" + h),
			report.Show("https://x/" + h), report.Show("V" + h), report.Show("host" + h), "@@ <script>document.title='PWNED'</script>"},
	}
}

// checkPage parses a page (the file, or the DOM a browser built from it)
// and checks that it shows what want says and that nothing in it can run
// or fetch: no script, no event handler, no link or source outside the
// page.
func checkPage(t *testing.T, what, page string, want reportWant) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	verdict := map[string]string{}
	metrics, spread := map[string]string{}, map[string]bool{}
	var nodes, svgNodes []string
	var title string
	var walk func(n *html.Node, section string)
	walk = func(n *html.Node, section string) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
				if strings.HasPrefix(strings.ToLower(a.Key), "on") {
					t.Errorf("%s: <%s> has an event handler %s=%q", what, n.Data, a.Key, a.Val)
				}
				if k := strings.ToLower(a.Key); (k == "href" || k == "xlink:href") && !strings.HasPrefix(a.Val, "#") || k == "src" {
					t.Errorf("%s: <%s %s=%q> points outside the page", what, n.Data, a.Key, a.Val)
				}
			}
			switch n.Data {
			case "script", "img", "iframe", "object", "embed", "link":
				t.Errorf("%s: a <%s> element: %s", what, n.Data, render(n))
			case "section":
				section = attr["id"]
			case "title":
				if section == "" && n.Parent != nil && n.Parent.Data == "head" {
					title = textOf(n)
				}
			case "li":
				if k, ok := attr["data-verdict"]; ok {
					verdict[k] = attr["class"]
				}
			case "tr":
				if k, ok := attr["data-metric"]; ok && section == "metrics" {
					if attr["id"] == "" && n.Parent != nil {
						cells := cellsOf(n)
						if len(cells) > 0 {
							if tableID(n) == "spread" {
								spread[k] = true
							} else {
								metrics[k] = cells[0]
							}
						}
					}
				}
				if k, ok := attr["data-node"]; ok {
					cells := cellsOf(n)
					nodes = append(nodes, k+" "+cells[1])
				}
			case "g":
				if k, ok := attr["data-node"]; ok {
					svgNodes = append(svgNodes, k)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, section)
		}
	}
	walk(doc, "")
	if title == "PWNED" || !strings.HasPrefix(title, "cas report: ") {
		t.Errorf("%s: title %q: a script ran, or the page is not a report", what, title)
	}
	for k, st := range want.verdict {
		if verdict[k] != st {
			t.Errorf("%s: verdict %s: got state %q, want %q", what, k, verdict[k], st)
		}
	}
	if len(verdict) != 4 {
		t.Errorf("%s: verdict lines %v, want signature, bytes, rng and reproduction", what, verdict)
	}
	for _, m := range want.metrics {
		if got, ok := metrics[m]; !ok || got != report.Show(m) {
			t.Errorf("%s: metric %q: shown as %q (present %v), want %q", what, m, got, ok, report.Show(m))
		}
	}
	if len(metrics) != len(want.metrics) {
		t.Errorf("%s: %d metrics shown, want %d", what, len(metrics), len(want.metrics))
	}
	for _, m := range want.spread {
		if !spread[m] {
			t.Errorf("%s: no distribution row for metric %q", what, m)
		}
	}
	var wantNodes []string
	for _, n := range want.nodes {
		kind, name, _ := strings.Cut(n, " ")
		wantNodes = append(wantNodes, kind+" "+report.Show(name))
	}
	slices.Sort(wantNodes)
	slices.Sort(nodes)
	if !slices.Equal(nodes, wantNodes) {
		t.Errorf("%s: lineage nodes\n got %q\nwant %q", what, nodes, wantNodes)
	}
	if len(svgNodes) != len(wantNodes) {
		t.Errorf("%s: %d boxes in the lineage picture, want %d", what, len(svgNodes), len(wantNodes))
	}
	text := textOf(doc)
	if i := strings.IndexAny(text, "\u202e\u200f\x00"); i >= 0 {
		t.Errorf("%s: a right-to-left mark or control shown as it is: %q", what, text[max(0, i-40):min(len(text), i+40)])
	}
	for _, s := range want.text {
		if !strings.Contains(text, s) {
			t.Errorf("%s: the page's text lacks %q", what, s)
		}
	}
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func cellsOf(tr *html.Node) []string {
	var cells []string
	for c := tr.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
			cells = append(cells, textOf(c))
		}
	}
	return cells
}

func tableID(n *html.Node) string {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.Type == html.ElementNode && p.Data == "table" {
			for _, a := range p.Attr {
				if a.Key == "id" {
					return a.Val
				}
			}
			return ""
		}
	}
	return ""
}

func render(n *html.Node) string {
	var b strings.Builder
	_ = html.Render(&b, n)
	return b.String()
}

// rowText is the text of the row of table id whose data-metric is metric.
func rowText(t *testing.T, page, id, metric string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var found string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && tableID(n) == id {
			for _, a := range n.Attr {
				if a.Key == "data-metric" && a.Val == metric {
					found = strings.Join(cellsOf(n), " ")
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if found == "" {
		t.Fatalf("no row %q in table %s", metric, id)
	}
	return found
}

// artifactDir is where screenshots are kept: $CAS_TEST_ARTIFACTS, or a
// directory under the system's temporary one that outlives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CAS_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "cas-test-artifacts")
	}
	dir = filepath.Join(dir, "report")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browse loads page in headless Chromium with the network off, takes a
// screenshot into png and returns the DOM after load. Every request the
// browser makes goes to a proxy that counts and refuses it: the test
// fails if there is one. Without chromium it says so and returns false;
// with CAS_REQUIRE_BROWSER set it fails instead.
func browse(t *testing.T, page, png string) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CAS_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium not found and CAS_REQUIRE_BROWSER is set: `make deps` installs Debian's chromium")
		}
		t.Logf("SKIPPED the browser check: chromium not found (`make deps` installs Debian's chromium package)")
		return "", false
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var requests atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			requests.Add(1)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--user-data-dir=" + t.TempDir(),
		"--proxy-server=http://" + ln.Addr().String(), "--proxy-bypass-list=<-loopback>",
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--screenshot=" + png, "--dump-dom", "file://" + page}
	if os.Geteuid() == 0 {
		args = append([]string{"--no-sandbox"}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	if n := requests.Load(); n > 0 {
		t.Errorf("the browser made %d network requests loading the report", n)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Errorf("no screenshot at %s: %v\n%s", png, err, stderr.String())
	}
	return string(out), true
}
