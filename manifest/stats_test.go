package manifest

import (
	"errors"
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	// Values with known statistics: mean 5, sample sd 2.138..., t(0.975, 7) = 2.364624.
	s, err := Summarize("acc", []float64{2, 4, 4, 4, 5, 5, 7, 9}, 0.5, false)
	if err != nil {
		t.Fatal(err)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-4 }
	if s.N != 8 || s.Mean != 5 || !near(s.StdDev, 2.13809) || s.Min != 2 || s.Max != 9 || s.Median != 4.5 {
		t.Errorf("stats = %+v", s)
	}
	half := 2.364624 * 2.13809 / math.Sqrt(8)
	if !near(s.CI95[0], 5-half) || !near(s.CI95[1], 5+half) {
		t.Errorf("CI95 = %v, want 5 ± %.5f", s.CI95, half)
	}
	if !near(s.CV, 2.13809/5) || !s.Reproducible {
		t.Errorf("CV = %v, reproducible %v; want %.5f within 0.5", s.CV, s.Reproducible, 2.13809/5)
	}
	if s, _ := Summarize("acc", []float64{0.9, 0.95}, 0.01, false); s.Reproducible {
		t.Errorf("CV %v called reproducible at 1%%", s.CV)
	}
	// Across seeds the spread is within tolerance or not, never "reproducible".
	if s, _ := Summarize("acc", []float64{0.9, 0.9001}, 0.01, true); s.Reproducible || !s.Within || !s.SeedsDiffer {
		t.Errorf("seeds differ: reproducible %v, within %v, seeds_differ %v; want false, true, true", s.Reproducible, s.Within, s.SeedsDiffer)
	}
	if _, err := Summarize("acc", []float64{1}, 0.1, false); !errors.Is(err, ErrTooFewRuns) {
		t.Errorf("one value: got %v, want ErrTooFewRuns", err)
	}
}
