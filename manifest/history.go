package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest/schema"
)

// The metrics history's types and bounds, from package schema.
type (
	History = schema.History
	Step    = schema.Step
)

// HistoryFile is where a run writes its metrics step by step.
const HistoryFile = schema.HistoryFile

// readHistory stores the metrics history the run wrote in runDir, if
// any, and returns it with the last value of each metric. A file that is
// not a history is left out with the returned error.
func readHistory(ctx context.Context, r *cas.Repo, runDir string) (*History, map[string]float64, error) {
	f, err := os.Open(filepath.Join(runDir, HistoryFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, schema.MaxHistorySize+1))
	if err != nil {
		return nil, nil, err
	}
	steps, err := schema.ParseHistory(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	ids, err := r.PutObjects(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	h := &History{Object: Object{Digest: ids[0], Size: int64(len(b))}, Records: len(steps), Names: schema.HistoryNames(steps)}
	return h, FinalValues(steps), nil
}

// LoadHistory reads the metrics history m records: nil when it has none.
func LoadHistory(ctx context.Context, r *cas.Repo, m *Manifest) ([]Step, error) {
	if m.MetricsHistory == nil {
		return nil, nil
	}
	b, err := r.ReadObject(ctx, m.MetricsHistory.Digest, schema.MaxHistorySize)
	if err != nil {
		return nil, fmt.Errorf("metrics history %s: %w", m.MetricsHistory.Digest.Short(), err)
	}
	return schema.ParseHistory(bytes.NewReader(b))
}

// FinalValues returns the last value of each metric in steps, in file
// order: what a run ended with.
func FinalValues(steps []Step) map[string]float64 {
	final := map[string]float64{}
	for _, s := range steps {
		for k, v := range s.Values {
			final[k] = v
		}
	}
	return final
}

// HistorySummary is what `cas show` tells of a metrics history: per
// metric, how many records hold it, its last step and final value.
type HistorySummary struct {
	Name      string  `json:"name"`
	Records   int     `json:"records"`
	FirstStep int64   `json:"first_step"`
	LastStep  int64   `json:"last_step"`
	Final     float64 `json:"final"`
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
}

// SummarizeHistory summarises each metric of steps, sorted by name.
func SummarizeHistory(steps []Step) []HistorySummary {
	by := map[string]*HistorySummary{}
	for _, s := range steps {
		for k, v := range s.Values {
			h := by[k]
			if h == nil {
				h = &HistorySummary{Name: k, FirstStep: s.Step, Min: v, Max: v}
				by[k] = h
			}
			h.Records++
			h.LastStep, h.Final = s.Step, v
			h.Min, h.Max = math.Min(h.Min, v), math.Max(h.Max, v)
		}
	}
	out := make([]HistorySummary, 0, len(by))
	for _, k := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *by[k])
	}
	return out
}

// CurveCheck compares a reproduction's metrics history with the
// recorded one, step by step.
type CurveCheck struct {
	// Names are the metrics compared.
	Names []string `json:"names"`
	// Points is how many (metric, step) values were compared.
	Points int `json:"points"`
	// MaxRelDiff is the largest relative difference seen.
	MaxRelDiff float64 `json:"max_relative_difference"`
	Within     bool    `json:"within_tolerance"`
	// First is the earliest step where a metric is beyond tolerance or
	// missing; nil when the curves agree.
	First *CurvePoint `json:"first_divergence"`
}

// CurvePoint is one metric at one step.
type CurvePoint struct {
	Name      string   `json:"name"`
	Step      int64    `json:"step"`
	Reference float64  `json:"reference"`
	New       *float64 `json:"new"`
	RelDiff   float64  `json:"relative_difference"`
}

// String says what diverged, as a reason for a FAIL.
func (p *CurvePoint) String() string {
	if p.New == nil {
		return fmt.Sprintf("metric %s has no value at step %d (recorded %.6g)", p.Name, p.Step, p.Reference)
	}
	return fmt.Sprintf("metric %s at step %d is %.6g, recorded %.6g (relative difference %.3g)", p.Name, p.Step, *p.New, p.Reference, p.RelDiff)
}

// CompareCurves checks every recorded value of each metric in names
// (default: every metric of want) against got's value at the same step
// by relative difference. A step that occurs more than once counts with
// its last value. The first divergence is the one at the lowest step
// (then by name).
func CompareCurves(want, got []Step, names []string, tol float64) *CurveCheck {
	if len(names) == 0 {
		names = schema.HistoryNames(want)
	}
	type key struct {
		name string
		step int64
	}
	at := func(steps []Step) map[key]float64 {
		m := map[key]float64{}
		for _, s := range steps {
			for k, v := range s.Values {
				m[key{k, s.Step}] = v
			}
		}
		return m
	}
	ref, repro := at(want), at(got)
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = true
	}
	var keys []key
	for k := range ref {
		if wanted[k.name] {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].step != keys[j].step {
			return keys[i].step < keys[j].step
		}
		return keys[i].name < keys[j].name
	})
	c := &CurveCheck{Names: slices.Clone(names), Within: true}
	sort.Strings(c.Names)
	for _, k := range keys {
		c.Points++
		p := CurvePoint{Name: k.name, Step: k.step, Reference: ref[k]}
		v, ok := repro[k]
		if ok {
			p.New = &v
			p.RelDiff = relDiff(v, p.Reference)
			c.MaxRelDiff = math.Max(c.MaxRelDiff, p.RelDiff)
		}
		if (!ok || p.RelDiff > tol) && c.First == nil {
			c.Within, c.First = false, &p
		}
	}
	return c
}

// relDiff is |v - ref| / |ref|, or the absolute difference when ref is 0.
func relDiff(v, ref float64) float64 {
	d := math.Abs(v - ref)
	if ref != 0 {
		d /= math.Abs(ref)
	}
	return d
}
