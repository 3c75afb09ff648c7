package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/manifest"
)

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
	if opts.Limit < 0 {
		return usageError("--max-count %d: want 1 or more (or leave it out for every run)", opts.Limit)
	}
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
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	w := columnWidth(names, 24)
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
			names = slices.Sorted(maps.Keys(e.Metrics))
			names = names[:min(4, len(names))]
		}
		for _, k := range names {
			if v, ok := e.Metrics[k]; ok {
				ms = append(ms, fmt.Sprintf("%s=%.4g", k, v))
			} else {
				ms = append(ms, k+"=-")
			}
		}
		fmt.Fprintf(opts.IO.Out, "%s %s  %-11s %-9s %s\n", padRight(fitName(e.Name, w), w), shortDigest(e.Digest), e.Status, commit, strings.Join(ms, " "))
	}
	return nil
}
