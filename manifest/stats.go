package manifest

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// MetricStats summarize one metric over repeated runs.
type MetricStats struct {
	Metric string  `json:"metric"`
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	StdDev float64 `json:"std_dev"` // sample standard deviation
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	// CI95 is the 95 % confidence interval of the mean (Student t).
	CI95 [2]float64 `json:"ci95"`
	// CV is the coefficient of variation, StdDev / |Mean|.
	CV        float64 `json:"cv"`
	Tolerance float64 `json:"tolerance"`
	// Within: the coefficient of variation is within the tolerance.
	Within bool `json:"within_tolerance"`
	// SeedsDiffer: the runs had different seeds, so the spread is the
	// metric's sensitivity to the seed, which says nothing of whether a
	// run reproduces.
	SeedsDiffer bool `json:"seeds_differ"`
	// Reproducible: repeats with the same seed agree within tolerance.
	// Never claimed across different seeds.
	Reproducible bool `json:"reproducible"`
}

// ErrTooFewRuns reports fewer than two values of a metric.
var ErrTooFewRuns = errors.New("manifest: need at least two runs with the metric")

// Summarize computes the statistics of one metric's values. Repeats with
// the same seed are reproducible when the coefficient of variation is
// within tolerance; across different seeds (seedsDiffer) the spread is
// only reported as within tolerance or not.
func Summarize(metric string, values []float64, tolerance float64, seedsDiffer bool) (*MetricStats, error) {
	if len(values) < 2 {
		return nil, fmt.Errorf("%w %q (found %d)", ErrTooFewRuns, metric, len(values))
	}
	x := slices.Clone(values)
	slices.Sort(x)
	n := float64(len(x))
	mean, sd := stat.MeanStdDev(x, nil)
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
	half := t * sd / math.Sqrt(n)
	s := &MetricStats{Metric: metric, N: len(x), Mean: mean, StdDev: sd, Min: x[0], Max: x[len(x)-1],
		Median: median(x), CI95: [2]float64{mean - half, mean + half}, Tolerance: tolerance}
	switch {
	case mean != 0:
		s.CV = sd / math.Abs(mean)
	case sd == 0:
		s.CV = 0
	default:
		s.CV = math.Inf(1)
	}
	s.Within = s.CV <= tolerance
	s.SeedsDiffer = seedsDiffer
	s.Reproducible = s.Within && !seedsDiffer
	return s, nil
}

// median of sorted values: the middle one, or the mean of the two middle
// ones.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
