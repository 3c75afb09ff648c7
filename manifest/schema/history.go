package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
)

// HistoryFile is the file in CAS_RUN_DIR where a run writes its metrics
// step by step: JSON lines, one object per line, such as
// {"step": 120, "loss": 0.53, "acc": 0.81}.
const HistoryFile = "metrics.jsonl"

// The bounds of a metrics history.
const (
	MaxHistorySize  = 64 << 20
	MaxHistoryLines = 1_000_000
)

// History is a run's metrics history, kept as an object: how many records
// it holds and the metric names that occur in it, sorted.
type History struct {
	Object
	Records int      `json:"records"`
	Names   []string `json:"names"`
}

// Step is one record of a metrics history.
type Step struct {
	Step   int64
	Values map[string]float64
}

// ErrHistory reports a metrics history that cannot be read.
var ErrHistory = errors.New("metrics history")

// ParseHistory reads a metrics history, in file order. Each non-blank
// line is a JSON object whose "step" is a non-negative integer (when
// absent, the record's index among the non-blank lines, from 0) and
// whose every other key is a metric name with a finite number. A line
// that is not such an object is an error naming its line number (from 1).
func ParseHistory(r io.Reader) ([]Step, error) {
	cr := &countingReader{r: io.LimitReader(r, MaxHistorySize+1)}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 64<<10), MaxHistorySize+1)
	tooBig := fmt.Errorf("%w: over %d bytes", ErrHistory, MaxHistorySize)
	var steps []Step
	line := 0
	for sc.Scan() {
		line++
		if line > MaxHistoryLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrHistory, MaxHistoryLines)
		}
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		st, err := parseStep(b, int64(len(steps)))
		if err != nil {
			if cr.n > MaxHistorySize {
				return nil, tooBig
			}
			return nil, fmt.Errorf("%w: line %d: %w", ErrHistory, line, err)
		}
		steps = append(steps, st)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, tooBig
		}
		return nil, fmt.Errorf("%w: %w", ErrHistory, err)
	}
	if cr.n > MaxHistorySize {
		return nil, tooBig
	}
	return steps, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// parseStep reads one line: a flat JSON object of numbers, each key once.
func parseStep(b []byte, index int64) (Step, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	st := Step{Step: index, Values: map[string]float64{}}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return st, errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return st, fmt.Errorf("not a JSON object: %w", err)
		}
		key, _ := t.(string)
		key = clip(key)
		if seen[key] {
			return st, fmt.Errorf("%q appears twice", key)
		}
		seen[key] = true
		v, err := dec.Token()
		if err != nil {
			return st, fmt.Errorf("not a JSON object: %w", err)
		}
		num, ok := v.(json.Number)
		if !ok {
			return st, fmt.Errorf("%q is not a number", key)
		}
		if key == "step" {
			n, err := strconv.ParseInt(string(num), 10, 64)
			if err != nil || n < 0 {
				return st, fmt.Errorf("step %s is not a non-negative integer", clip(string(num)))
			}
			st.Step = n
			continue
		}
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return st, fmt.Errorf("%q is %s, not a finite number", key, clip(string(num)))
		}
		st.Values[key] = f
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return st, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return st, errors.New("more than one JSON value")
	}
	return st, nil
}

// HistoryNames returns the metric names that occur in steps, sorted.
func HistoryNames(steps []Step) []string {
	set := map[string]bool{}
	for _, s := range steps {
		for k := range s.Values {
			set[k] = true
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// clip shortens what an error message quotes from a line.
func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
