package schema

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseHistory(t *testing.T) {
	in := `{"step": 120, "loss": 0.53, "acc": 0.81}

{"loss": 0.5}
  {"step":0,"loss":-1e-3}  
{"step": 9007199254740993, "x": 1e300}
`
	got, err := ParseHistory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Step: 120, Values: map[string]float64{"loss": 0.53, "acc": 0.81}},
		{Step: 1, Values: map[string]float64{"loss": 0.5}}, // no step: its record index
		{Step: 0, Values: map[string]float64{"loss": -0.001}},
		{Step: 9007199254740993, Values: map[string]float64{"x": 1e300}}, // exact past 2^53
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseHistory:\n got %+v\nwant %+v", got, want)
	}
	if names := HistoryNames(got); !reflect.DeepEqual(names, []string{"acc", "loss", "x"}) {
		t.Errorf("HistoryNames = %v", names)
	}
	if steps, err := ParseHistory(strings.NewReader("")); err != nil || len(steps) != 0 {
		t.Errorf("empty history: %v %v", steps, err)
	}
	if names := HistoryNames(nil); names == nil || len(names) != 0 {
		t.Errorf("HistoryNames(nil) = %#v, want an empty list", names)
	}
}

func TestParseHistoryRejects(t *testing.T) {
	tests := map[string]string{
		"array":          `[1,2]`,
		"string value":   `{"loss":"0.5"}`,
		"null value":     `{"loss":null}`,
		"nested":         `{"loss":{"val":1}}`,
		"bool":           `{"ok":true}`,
		"negative step":  `{"step":-1,"loss":1}`,
		"fraction step":  `{"step":1.5,"loss":1}`,
		"exponent step":  `{"step":1e3,"loss":1}`,
		"string step":    `{"step":"3"}`,
		"NaN":            `{"loss":NaN}`,
		"Infinity":       `{"loss":Infinity}`,
		"overflow":       `{"loss":1e400}`,
		"duplicate key":  `{"loss":1,"loss":2}`,
		"two values":     `{"loss":1} {"loss":2}`,
		"truncated":      `{"loss":1`,
		"not json":       `loss=1`,
		"trailing comma": `{"loss":1,}`,
	}
	for name, bad := range tests {
		in := "{\"loss\":1}\n\n" + bad + "\n{\"loss\":2}\n"
		_, err := ParseHistory(strings.NewReader(in))
		if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "line 3:") {
			t.Errorf("%s: got %v, want an ErrHistory naming line 3", name, err)
		}
	}
}

func TestParseHistoryBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 64 MiB inputs")
	}
	// Exactly at both bounds reads; one byte or one line more does not.
	line := `{"l":1}` + "\n"
	first := `{"l":1` + strings.Repeat(" ", MaxHistorySize-MaxHistoryLines*len(line)) + "}\n"
	at := first + strings.Repeat(line, MaxHistoryLines-1)
	if len(at) != MaxHistorySize {
		t.Fatalf("built %d bytes", len(at))
	}
	steps, err := ParseHistory(strings.NewReader(at))
	if err != nil || len(steps) != MaxHistoryLines {
		t.Fatalf("at the bounds: %d steps, %v", len(steps), err)
	}
	if _, err := ParseHistory(strings.NewReader(at[:6] + " " + at[6:])); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("over %d bytes", MaxHistorySize)) {
		t.Errorf("one byte over: %v", err)
	}
	many := strings.Repeat("{}\n", MaxHistoryLines) + "\n"
	if _, err := ParseHistory(strings.NewReader(many)); err == nil || !strings.Contains(err.Error(), "lines") {
		t.Errorf("one line over: %v", err)
	}
	long := `{"l":` + strings.Repeat("1", MaxHistorySize) + "}\n"
	if _, err := ParseHistory(strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("one long line: %v", err)
	}
}
