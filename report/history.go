package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// The metrics history a run wrote to $CAS_RUN_DIR/metrics.jsonl, as the
// manifest records it ("metrics_history"). This is a small adapter written
// against the shared specification while the schema gains the field
// (issue 17): it reads the field from the stored manifest's bytes, so it
// works whether or not this cas's schema knows it.

// historyRef is the manifest's "metrics_history" object.
type historyRef struct {
	Digest  digest.Digest `json:"digest"`
	Size    int64         `json:"size"`
	Records int           `json:"records"`
	Names   []string      `json:"names"`
}

// Limits of a history file, as the specification sets them.
const (
	maxHistoryBytes = 64 << 20
	maxHistoryLines = 1_000_000
)

// step is one line of a history: a step number and its metrics.
type step struct {
	Step   int64
	Values map[string]float64
}

// historyOf returns the history a stored manifest's bytes record, or nil.
func historyOf(raw []byte) (*historyRef, error) {
	var probe struct {
		History *historyRef `json:"metrics_history"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, err
	}
	return probe.History, nil
}

// parseHistory reads a history file: JSON lines, one object per line;
// "step" a non-negative integer (absent: the record's index among the
// non-blank lines, from 0, as schema.ParseHistory counts it), every
// other key a metric name with a finite number. Blank lines are skipped;
// any other line that is not such an object is an error naming its line.
func parseHistory(r io.Reader) ([]step, error) {
	var steps []step
	sc := bufio.NewScanner(io.LimitReader(r, maxHistoryBytes+1))
	sc.Buffer(make([]byte, 0, 64<<10), maxHistoryBytes+1)
	n, total := 0, 0
	for sc.Scan() {
		line := sc.Bytes()
		total += len(line) + 1
		if total > maxHistoryBytes+1 {
			return nil, fmt.Errorf("metrics history: over %d bytes", maxHistoryBytes)
		}
		n++
		if n > maxHistoryLines {
			return nil, fmt.Errorf("metrics history: over %d lines", maxHistoryLines)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, err := parseStep(line, int64(len(steps)))
		if err != nil {
			return nil, fmt.Errorf("metrics history: line %d: %w", n, err)
		}
		steps = append(steps, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics history: %w", err)
	}
	return steps, nil
}

func parseStep(line []byte, index int64) (step, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
		return step{}, fmt.Errorf("not a JSON object")
	}
	s := step{Step: index, Values: map[string]float64{}}
	for k, v := range obj {
		num, ok := v.(json.Number)
		if !ok {
			return step{}, fmt.Errorf("%q is not a number", k)
		}
		if k == "step" {
			i, err := strconv.ParseInt(num.String(), 10, 64)
			if err != nil || i < 0 {
				return step{}, fmt.Errorf("step %s is not a non-negative integer", num)
			}
			s.Step = i
			continue
		}
		f, err := num.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return step{}, fmt.Errorf("%q is not a finite number", k)
		}
		s.Values[k] = f
	}
	return s, nil
}

// Curve is one metric's values over steps, one series per run.
type Curve struct {
	Name   string   `json:"name"`
	Series []Series `json:"series"`
}

// Series is one run's points of a curve.
type Series struct {
	Run    string       `json:"run"`
	Points [][2]float64 `json:"points"` // step, value
}

// curves reads the metrics history of the run (and of the runs compared
// with it) into one curve per metric name.
func (rep *Report) curves(ctx context.Context, r *cas.Repo) error {
	runs := rep.Group
	if len(runs) == 0 {
		runs = []RunInfo{rep.Run}
	}
	byName := map[string]*Curve{}
	for _, run := range runs {
		steps, err := loadHistory(ctx, r, run.Digest)
		if err != nil {
			return fmt.Errorf("run %s: %w", run.Name, err)
		}
		series := map[string]*Series{}
		for _, s := range steps {
			for k, v := range s.Values {
				if series[k] == nil {
					series[k] = &Series{Run: run.Name}
				}
				series[k].Points = append(series[k].Points, [2]float64{float64(s.Step), v})
			}
		}
		for k, s := range series {
			if byName[k] == nil {
				byName[k] = &Curve{Name: k}
			}
			byName[k].Series = append(byName[k].Series, *s)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(byName)) {
		rep.Curves = append(rep.Curves, *byName[k])
	}
	return nil
}

// loadHistory reads the history the manifest d records, if any.
func loadHistory(ctx context.Context, r *cas.Repo, d digest.Digest) ([]step, error) {
	raw, err := r.ReadObject(ctx, d, 8<<20)
	if err != nil {
		return nil, err
	}
	h, err := historyOf(raw)
	if err != nil || h == nil {
		return nil, err
	}
	b, err := r.ReadObject(ctx, h.Digest, maxHistoryBytes)
	if err != nil {
		return nil, err
	}
	return parseHistory(bytes.NewReader(b))
}
