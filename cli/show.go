package cli

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
)

type showOptions struct {
	IO      *IOStreams
	Factory *Factory
	Ref     string
	JSON    bool
}

func newCmdShow(f *Factory) *cobra.Command {
	opts := &showOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "show REF",
		Short: "Summarize a run's manifest",
		Long: `Print a readable summary of a manifest: command, status, inputs, code,
environment, seeds, outputs and metrics. REF is a manifest digest or
prefix, a ref, or a run name (runs/NAME may be shortened to NAME).`,
		Example: "  cas show baseline\n  cas show runs/baseline --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return showRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the manifest itself")
	return cmd
}

func showRun(ctx context.Context, opts *showOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	var m *manifest.Manifest
	var d digest.Digest
	err = readThrough(ctx, opts.IO, r, func() (err error) {
		m, d, err = manifest.Resolve(ctx, r, opts.Ref)
		return err
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Digest   string             `json:"digest"`
			Manifest *manifest.Manifest `json:"manifest"`
		}{d.String(), m})
	}
	w := opts.IO.Out
	fmt.Fprintf(w, "run %s  %s\n", m.Name, d)
	fmt.Fprintf(w, "command:  %s\n", strings.Join(m.Command, " "))
	if m.Tool != "" {
		fmt.Fprintf(w, "recorded: by %s\n", m.Tool)
	}
	fmt.Fprintf(w, "status:   %s (exit %d) in %.1fs, started %s\n", m.Status, m.ExitCode, m.Seconds, m.Started.Local().Format("2006-01-02 15:04:05"))
	seed := "none"
	if m.Seeds.Seed != nil {
		seed = fmt.Sprint(*m.Seeds.Seed)
	}
	fmt.Fprintf(w, "seeds:    seed %s, rank %d\n", seed, m.Seeds.Rank)
	c := m.Code
	if c.Git {
		dirty := "clean"
		if c.Dirty {
			dirty = fmt.Sprintf("dirty (%d untracked", len(c.Untracked))
			if c.Patch != nil {
				dirty += ", patch " + shortDigest(c.Patch.Digest)
			}
			dirty += ")"
		}
		fmt.Fprintf(w, "code:     %s on %s, %s\n", shortHex(c.Commit), orDash(c.Branch), dirty)
	} else {
		fmt.Fprintf(w, "code:     %s\n", c.Reason)
	}
	e := m.Environment
	py := "absent"
	if e.Python != nil {
		py = e.Python.Version
	}
	fmt.Fprintf(w, "env:      %s %s, %s x%d, Python %s, %d packages", e.OS, e.Kernel, e.CPU, e.CPUs, py, e.PackageCount)
	if e.Torch != nil {
		fmt.Fprintf(w, ", torch %s", e.Torch.Version)
	}
	fmt.Fprintf(w, ", %d GPUs\n", len(e.GPUs))
	printArtifacts(w, "inputs:", m.Inputs)
	printArtifacts(w, "outputs:", m.Outputs)
	if len(m.Metrics) > 0 {
		fmt.Fprintln(w, "metrics:")
		for _, k := range sortedKeys(m.Metrics) {
			fmt.Fprintf(w, "  %-24s %g\n", k, m.Metrics[k])
		}
	}
	return nil
}

func printArtifacts(w io.Writer, title string, as []manifest.Artifact) {
	if len(as) == 0 {
		return
	}
	fmt.Fprintln(w, title)
	for _, a := range as {
		fmt.Fprintf(w, "  %-16s %s  %s %s\n", a.Name, shortDigest(a.Digest), a.Kind, bytesStr(a.Size))
		for _, c := range a.Checkpoints {
			fmt.Fprintf(w, "    %s: %d tensors, %d RNG states\n", c.Path, c.Tensors, len(c.RNG))
		}
	}
}

func shortDigest(s string) string { return shortHex(strings.TrimPrefix(s, "blake3:")) }

func shortHex(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orDash(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type logOptions struct {
	IO      *IOStreams
	Factory *Factory
	Limit   int
	Metrics []string
	JSON    bool
}

func newCmdLog(f *Factory) *cobra.Command {
	opts := &logOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "log",
		Short: "List recorded runs, newest first",
		Long: `List the runs recorded with 'cas run' and 'cas record', newest first: name,
manifest digest, status, commit and metrics. Without --metric, the first
four metrics by name are shown; --metric NAME (repeatable) chooses them.`,
		Example: "  cas log\n  cas log --metric acc --metric loss\n  cas log -n 5 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return logRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVarP(&opts.Limit, "max-count", "n", 0, "show at most `N` runs")
	cmd.Flags().StringArrayVar(&opts.Metrics, "metric", nil, "show the metric `NAME` (repeatable; default: the first four by name)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print runs as JSON")
	return cmd
}

type logEntry struct {
	Name    string             `json:"name"`
	Ref     string             `json:"ref"`
	Digest  string             `json:"digest"`
	Status  string             `json:"status"`
	Exit    int                `json:"exit_code"`
	Started string             `json:"started"`
	Commit  string             `json:"commit"`
	Dirty   bool               `json:"dirty"`
	Seed    *int64             `json:"seed"`
	Metrics map[string]float64 `json:"metrics"`
}

func logRun(ctx context.Context, opts *logOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	runs, err := manifest.Runs(ctx, r)
	if err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %v\n", err)
	}
	if opts.Limit > 0 && len(runs) > opts.Limit {
		runs = runs[:opts.Limit]
	}
	entries := []logEntry{}
	for _, e := range runs {
		m := e.Manifest
		entries = append(entries, logEntry{Name: m.Name, Ref: e.Ref, Digest: e.Digest.String(), Status: m.Status, Exit: m.ExitCode,
			Started: m.Started.Format("2006-01-02T15:04:05Z07:00"), Commit: m.Code.Commit, Dirty: m.Code.Dirty, Seed: m.Seeds.Seed, Metrics: m.Metrics})
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, entries)
	}
	for _, e := range entries {
		commit := shortHex(e.Commit)
		if len(commit) > 8 {
			commit = commit[:8]
		}
		if e.Dirty {
			commit += "+"
		}
		var ms []string
		names := opts.Metrics
		if len(names) == 0 {
			names = sortedKeys(e.Metrics)
			names = names[:min(4, len(names))]
		}
		for _, k := range names {
			if v, ok := e.Metrics[k]; ok {
				ms = append(ms, fmt.Sprintf("%s=%.4g", k, v))
			} else {
				ms = append(ms, k+"=-")
			}
		}
		fmt.Fprintf(opts.IO.Out, "%-24s %s  %-11s %-9s %s\n", e.Name, shortDigest(e.Digest), e.Status, commit, strings.Join(ms, " "))
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
