package cli

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
)

type statsOptions struct {
	IO        *IOStreams
	Factory   *Factory
	JSON      bool
	Metrics   []string
	Refs      []string
	Tolerance float64
}

func newCmdStats(f *Factory) *cobra.Command {
	opts := &statsOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "stats [--metric NAME REF...]",
		Short: "Show how much the store holds, or the statistics of a metric over runs",
		Long: `Without arguments, show the store's size: logical bytes (what the refs point
at), unique bytes (each chunk once), stored bytes (the packs on disk),
chunk and pack counts, the dedup and compression ratios, and per chunk
codec (none, zstd, float: the byte-grouping codec of float tensors) the
chunks stored with it and what it saved.

With --metric NAME and runs (names, manifest digests, or a name prefix
ending in *, like 'lr0.1-s*'), show for each metric n, mean, standard
deviation, min, median, max, the 95 % confidence interval of the mean
(Student t) and the coefficient of variation. Repeats with the same seed
are called reproducible when the coefficient of variation is within
--tolerance; runs with different seeds (run --repeat) only show whether
their spread across seeds is within it, which says how sensitive the
metric is to the seed, not whether a run reproduces.`,
		Example: "  cas stats\n  cas stats --json\n  cas stats --metric acc 'lr0.1-s*' --tolerance 0.01",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Refs = args
			if len(args) > 0 && len(opts.Metrics) == 0 {
				return usageError("runs given without --metric NAME")
			}
			if len(opts.Metrics) > 0 && len(args) == 0 {
				return usageError("--metric needs the runs to summarize")
			}
			if len(opts.Metrics) > 0 {
				return runStatsRun(cmd.Context(), opts)
			}
			return statsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the figures as JSON")
	cmd.Flags().StringArrayVar(&opts.Metrics, "metric", nil, "summarize the metric `NAME` over the given runs (repeatable)")
	cmd.Flags().Float64Var(&opts.Tolerance, "tolerance", 0.01, "the largest coefficient of variation that counts as reproducible")
	return cmd
}

func statsRun(ctx context.Context, opts *statsOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	// Logical bytes count what runs produced and read too, not only what
	// refs name: a run's outputs are reachable through its manifest.
	var roots []cas.Object
	runs, _ := manifest.Runs(ctx, r)
	for _, run := range runs {
		for _, a := range slices.Concat(run.Manifest.Inputs, run.Manifest.Outputs) {
			roots = append(roots, cas.Object{Digest: a.Digest, Size: a.Size})
		}
	}
	s, err := r.Stats(ctx, roots...)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, s)
	}
	w := opts.IO.Out
	fmt.Fprintf(w, "refs:              %d\n", s.Refs)
	fmt.Fprintf(w, "logical bytes:     %s\n", bytesStr(s.LogicalBytes))
	fmt.Fprintf(w, "unique bytes:      %s\n", bytesStr(s.UniqueBytes))
	fmt.Fprintf(w, "stored bytes:      %s\n", bytesStr(s.StoredBytes))
	fmt.Fprintf(w, "chunks:            %d (+%d trees)\n", s.Chunks, s.Trees)
	fmt.Fprintf(w, "packs:             %d\n", s.Packs)
	fmt.Fprintf(w, "dedup ratio:       %.2fx\n", s.DedupRatio)
	fmt.Fprintf(w, "compression ratio: %.2fx\n", s.CompressionRatio)
	for _, c := range s.Codecs {
		if c.Chunks == 0 {
			continue
		}
		saved := ""
		if c.RawBytes > 0 && c.SavedBytes != 0 {
			saved = fmt.Sprintf(", saved %s (%.1f %%)", bytesStr(c.SavedBytes), 100*float64(c.SavedBytes)/float64(c.RawBytes))
		}
		fmt.Fprintf(w, "%-19s%d chunks, %s stored of %s%s\n", "codec "+c.Codec+":", c.Chunks, bytesStr(c.StoredBytes), bytesStr(c.RawBytes), saved)
	}
	return nil
}

// runStatsRun summarizes metrics over runs.
func runStatsRun(ctx context.Context, opts *statsOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	var ms []*manifest.Manifest
	var all []manifest.RunEntry
	for _, ref := range opts.Refs {
		if prefix, ok := strings.CutSuffix(ref, "*"); ok {
			if all == nil {
				if all, err = manifest.Runs(ctx, r); err != nil && len(all) == 0 {
					return err
				}
			}
			n := 0
			for _, e := range all {
				if strings.HasPrefix(e.Manifest.Name, strings.TrimPrefix(prefix, manifest.RefPrefix)) {
					ms = append(ms, e.Manifest)
					n++
				}
			}
			if n == 0 {
				return &userError{msg: "no run name starts with " + prefix, hint: "`cas log` lists runs"}
			}
			continue
		}
		m, _, err := manifest.Resolve(ctx, r, ref)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	var out []*manifest.MetricStats
	seedsDiffer := false
	for _, m := range ms {
		seedsDiffer = seedsDiffer || !reflect.DeepEqual(m.Seeds, ms[0].Seeds)
	}
	for _, metric := range opts.Metrics {
		var vals []float64
		for _, m := range ms {
			if v, ok := m.Metrics[metric]; ok {
				vals = append(vals, v)
			}
		}
		s, err := manifest.Summarize(metric, vals, opts.Tolerance, seedsDiffer)
		if err != nil {
			return err
		}
		out = append(out, s)
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, out)
	}
	w := opts.IO.Out
	last := "reproducible"
	if seedsDiffer {
		last = "spread across seeds"
	}
	fmt.Fprintf(w, "%-16s %4s %12s %12s %12s %12s %12s %27s %8s  %s\n", "metric", "n", "mean", "std dev", "min", "median", "max", "95% CI", "CV", last)
	for _, s := range out {
		verdict := "no"
		switch {
		case s.SeedsDiffer && s.Within:
			verdict = "within"
		case s.SeedsDiffer:
			verdict = "wide"
		case s.Reproducible:
			verdict = "yes"
		}
		fmt.Fprintf(w, "%-16s %4d %12.6g %12.6g %12.6g %12.6g %12.6g [%12.6g, %12.6g] %8.3g  %s (CV <= %g)\n",
			s.Metric, s.N, s.Mean, s.StdDev, s.Min, s.Median, s.Max, s.CI95[0], s.CI95[1], s.CV, verdict, s.Tolerance)
	}
	return nil
}
