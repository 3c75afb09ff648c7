package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
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
environment, seeds, outputs, metrics and the metrics history (per
metric: records, first and last step, final, min and max). REF is a manifest digest or
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
	err = readThrough(ctx, opts.Factory, r, func() (err error) {
		m, d, err = manifest.Resolve(ctx, r, opts.Ref)
		return err
	})
	if err != nil {
		return err
	}
	history, histErr := showHistory(ctx, opts.Factory, r, m)
	if histErr != nil {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %v\n", histErr)
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Digest   string             `json:"digest"`
			Manifest *manifest.Manifest `json:"manifest"`
			// History summarises each metric of the metrics history.
			History []manifest.HistorySummary `json:"metrics_history,omitempty"`
		}{d.String(), m, history})
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
				dirty += ", patch " + shortOf(c.Patch.Digest)
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
		for _, k := range slices.Sorted(maps.Keys(m.Metrics)) {
			fmt.Fprintf(w, "  %-24s %g\n", k, m.Metrics[k])
		}
	}
	if h := m.MetricsHistory; h != nil {
		fmt.Fprintf(w, "metrics history: %d records, %d metrics, %s %s\n", h.Records, len(h.Names), shortOf(h.Digest), bytesStr(h.Size))
		for _, s := range history {
			fmt.Fprintf(w, "  %-24s %d records, steps %d..%d, final %g (min %g, max %g)\n", s.Name, s.Records, s.FirstStep, s.LastStep, s.Final, s.Min, s.Max)
		}
	}
	return nil
}

// showHistory summarises the metrics history m records, read through the
// default remote when the store lacks it.
func showHistory(ctx context.Context, f *Factory, r *cas.Repo, m *manifest.Manifest) ([]manifest.HistorySummary, error) {
	if m.MetricsHistory == nil {
		return nil, nil
	}
	var steps []manifest.Step
	err := readThrough(ctx, f, r, func() (err error) {
		steps, err = manifest.LoadHistory(ctx, r, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	return manifest.SummarizeHistory(steps), nil
}

func printArtifacts(w io.Writer, title string, as []manifest.Artifact) {
	if len(as) == 0 {
		return
	}
	fmt.Fprintln(w, title)
	for _, a := range as {
		fmt.Fprintf(w, "  %-16s %s  %s %s\n", a.Name, shortOf(a.Digest), a.Kind, bytesStr(a.Size))
		for _, c := range a.Checkpoints {
			fmt.Fprintf(w, "    %s: %s, %s\n", c.Path, count(c.Tensors, "tensor"), count(len(c.RNG), "RNG state"))
		}
	}
}

func shortDigest(s string) string { return shortHex(strings.TrimPrefix(s, "blake3:")) }

// shortOf is d abbreviated, or "-" for none.
func shortOf(d digest.Digest) string {
	if d.IsZero() {
		return "-"
	}
	return d.Short()
}

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
