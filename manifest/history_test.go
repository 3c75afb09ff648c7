package manifest

import (
	"context"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cas-ml/cas/digest"
)

func steps(lines ...string) []Step {
	var out []Step
	for i, l := range lines {
		s := Step{Step: int64(i), Values: map[string]float64{}}
		for _, kv := range strings.Fields(l) {
			k, v, _ := strings.Cut(kv, "=")
			if k == "step" {
				s.Step = int64(mustFloat(v))
				continue
			}
			s.Values[k] = mustFloat(v)
		}
		out = append(out, s)
	}
	return out
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}

func TestCompareCurves(t *testing.T) {
	want := steps("loss=8 acc=1", "loss=4", "loss=2 acc=3", "step=10 loss=1")
	same := CompareCurves(want, steps("loss=8 acc=1", "loss=4", "loss=2 acc=3", "step=10 loss=1"), nil, 0)
	if !same.Within || same.First != nil || same.Points != 6 || same.MaxRelDiff != 0 || !reflect.DeepEqual(same.Names, []string{"acc", "loss"}) {
		t.Errorf("equal curves: %+v", same)
	}
	// Steps are matched by number, not position; the earliest divergence
	// is named, not the largest.
	got := steps("loss=8 acc=1", "loss=5", "loss=2 acc=9", "step=10 loss=1")
	c := CompareCurves(want, got, nil, 0.2)
	if c.Within || c.First == nil || c.First.Name != "loss" || c.First.Step != 1 || *c.First.New != 5 || c.First.RelDiff != 0.25 || c.MaxRelDiff != 2 {
		t.Fatalf("diverging: %+v first %+v", c, c.First)
	}
	if s := c.First.String(); s != "metric loss at step 1 is 5, recorded 4 (relative difference 0.25)" {
		t.Errorf("String = %q", s)
	}
	if c := CompareCurves(want, got, []string{"loss"}, 0.3); !c.Within || c.Points != 4 {
		t.Errorf("loss within 0.3: %+v", c)
	}
	// A recorded step the reproduction lacks diverges there.
	c = CompareCurves(want, steps("loss=8 acc=1", "loss=4", "loss=2 acc=3"), []string{"loss"}, 1)
	if c.Within || c.First.Step != 10 || c.First.New != nil {
		t.Errorf("missing step: %+v %+v", c, c.First)
	}
	if s := c.First.String(); s != "metric loss has no value at step 10 (recorded 1)" {
		t.Errorf("String = %q", s)
	}
}

func TestSummarizeHistory(t *testing.T) {
	got := SummarizeHistory(steps("loss=8 acc=1", "loss=4", "step=7 loss=6 acc=3"))
	want := []HistorySummary{
		{Name: "acc", Records: 2, FirstStep: 0, LastStep: 7, Final: 3, Min: 1, Max: 3},
		{Name: "loss", Records: 3, FirstStep: 0, LastStep: 7, Final: 6, Min: 4, Max: 8},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SummarizeHistory:\n got %+v\nwant %+v", got, want)
	}
	if f := FinalValues(steps("loss=8 acc=1", "loss=4")); !reflect.DeepEqual(f, map[string]float64{"loss": 4, "acc": 1}) {
		t.Errorf("FinalValues = %v", f)
	}
}

// TestRunRecordsHistory: the history a run writes is stored and recorded,
// its final values are the metrics, and a history left by an earlier run
// of the same name is not appended to.
func TestRunRecordsHistory(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	dir, repo := project(t)
	script := `printf '{"step":1,"loss":2}\n{"step":2,"loss":1,"acc":0.5}\n' >> "$CAS_RUN_DIR/metrics.jsonl"`
	var res *Result
	for range 2 {
		var err error
		res, err = Run(context.Background(), repo, Options{Name: "h", WorkDir: dir, Command: []string{"sh", "-c", script},
			Environ: os.Environ(), Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
	}
	m := res.Manifest
	body := "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1,\"acc\":0.5}\n"
	want := &History{Object: Object{Digest: digest.Of([]byte(body)), Size: int64(len(body))}, Records: 2, Names: []string{"acc", "loss"}}
	if !reflect.DeepEqual(m.MetricsHistory, want) {
		t.Errorf("MetricsHistory = %+v, want %+v", m.MetricsHistory, want)
	}
	if !reflect.DeepEqual(m.Metrics, map[string]float64{"loss": 1, "acc": 0.5}) {
		t.Errorf("Metrics = %v", m.Metrics)
	}
	back, err := LoadHistory(context.Background(), repo, m)
	if err != nil || len(back) != 2 || back[1].Values["acc"] != 0.5 {
		t.Errorf("LoadHistory: %v %+v", err, back)
	}
	// A history that is not JSON lines is left out, with a warning.
	var warned []string
	res, err = Run(context.Background(), repo, Options{Name: "bad", WorkDir: dir, Command: []string{"sh", "-c", `echo '{"loss":"x"}' > "$CAS_RUN_DIR/metrics.jsonl"`},
		Environ: os.Environ(), Stdout: io.Discard, Stderr: io.Discard, Warn: func(s string) { warned = append(warned, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.MetricsHistory != nil || len(warned) != 1 || !strings.Contains(warned[0], `line 1: "loss" is not a number`) {
		t.Errorf("bad history: %+v, warnings %q", res.Manifest.MetricsHistory, warned)
	}
}
