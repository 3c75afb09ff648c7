package report

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
)

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

// loadHistory reads the metrics history the run manifest d records, if
// any: the manifest parsed and the history read as `cas show` reads them.
func loadHistory(ctx context.Context, r *cas.Repo, d digest.Digest) ([]manifest.Step, error) {
	m, err := manifest.Load(ctx, r, d)
	if err != nil {
		return nil, err
	}
	return manifest.LoadHistory(ctx, r, m)
}
