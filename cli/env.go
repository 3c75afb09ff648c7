package cli

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/manifest"
)

type envOptions struct {
	IO      *IOStreams
	Factory *Factory
	Python  string
	Ref     string
	JSON    bool
}

func newCmdEnv(f *Factory) *cobra.Command {
	opts := &envOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Show this machine's environment as a manifest would record it",
		Long: `Print the environment snapshot 'cas run' records: OS, kernel, CPU, memory,
Python, packages, torch/CUDA/cuDNN, GPUs, and the determinism variables.
Tools that are missing are listed as absent.

'cas env diff REF' compares this machine with a recorded run's: do it
before re-running a published experiment.`,
		Example: "  cas env\n  cas env --json\n  cas env diff baseline",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return envRun(cmd.Context(), opts)
		},
	}
	cmd.PersistentFlags().StringVar(&opts.Python, "python", "python3", "the Python interpreter to describe")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	diff := &cobra.Command{
		Use:     "diff REF",
		Short:   "Compare this machine's environment with a recorded run's",
		Long:    "Compare this machine with the environment recorded in a run's manifest: OS, CPU, Python, packages (added, removed, version changed), torch/CUDA and GPUs.",
		Example: "  cas env diff baseline",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return envDiffRun(cmd.Context(), opts)
		},
	}
	diff.Flags().BoolVar(&opts.JSON, "json", false, "print the differences as JSON")
	cmd.AddCommand(diff)
	return cmd
}

func envRun(ctx context.Context, opts *envOptions) error {
	es := manifest.CaptureEnv(ctx, opts.Python, os.Environ())
	vars := manifest.CaptureVars(os.Environ(), nil)
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Environment manifest.Environment `json:"environment"`
			Variables   map[string]string    `json:"variables"`
		}{es.Env, vars})
	}
	e := es.Env
	w := opts.IO.Out
	fmt.Fprintf(w, "os:        %s %s (%s)\n", e.OS, e.Kernel, e.Arch)
	fmt.Fprintf(w, "cpu:       %s x%d, %s memory\n", e.CPU, e.CPUs, bytesStr(e.MemoryBytes))
	if e.Python != nil {
		fmt.Fprintf(w, "python:    %s (%s)", e.Python.Version, e.Python.Executable)
		if e.Python.NumPy != "" {
			fmt.Fprintf(w, ", numpy %s", e.Python.NumPy)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "packages:  %d (%s)\n", e.PackageCount, orDash(e.PackageManager))
	}
	if t := e.Torch; t != nil {
		fmt.Fprintf(w, "torch:     %s, CUDA %s, cuDNN %s, deterministic algorithms %v\n", t.Version, orDash(t.CUDA), orDash(t.CuDNN), t.Deterministic)
	}
	for _, g := range e.GPUs {
		fmt.Fprintf(w, "gpu:       %s, driver %s, %s\n", g.Name, g.Driver, bytesStr(g.MemoryBytes))
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(w, "variable:  %s=%s\n", k, vars[k])
	}
	if len(e.Absent) > 0 {
		fmt.Fprintf(w, "absent:    %v\n", e.Absent)
	}
	return nil
}

func envDiffRun(ctx context.Context, opts *envOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	rec, _, err := manifest.Resolve(ctx, r, opts.Ref)
	if err != nil {
		return err
	}
	recPkgs, err := manifest.LoadObject(ctx, r, rec.Environment.Packages, 64<<20)
	if err != nil {
		return err
	}
	python := opts.Python
	if rec.Environment.Python != nil && opts.Python == "python3" {
		python = manifest.PythonFor(rec.Command)
	}
	now := manifest.CaptureEnv(ctx, python, os.Environ())
	here := &manifest.Manifest{Environment: now.Env, Variables: manifest.CaptureVars(os.Environ(), nil)}
	diffs := manifest.EnvDiff(rec, here, recPkgs, now.Packages)
	if opts.JSON {
		return writeJSON(opts.IO.Out, diffs)
	}
	if len(diffs) == 0 {
		fmt.Fprintln(opts.IO.Out, "this machine matches the recorded environment")
		return nil
	}
	printDifferences(opts.IO, diffs, "recorded", "here")
	return nil
}

func printDifferences(io *IOStreams, diffs []manifest.Difference, a, b string) {
	section := ""
	for _, d := range diffs {
		if d.Section != section {
			section = d.Section
			fmt.Fprintf(io.Out, "%s:\n", section)
		}
		switch {
		case d.A == "":
			fmt.Fprintf(io.Out, "  + %s: %s\n", d.Key, d.B)
		case d.B == "":
			fmt.Fprintf(io.Out, "  - %s: %s\n", d.Key, d.A)
		case d.Delta != nil:
			rel := ""
			if d.Relative != nil {
				rel = fmt.Sprintf(" (%+.2f%%)", *d.Relative*100)
			}
			fmt.Fprintf(io.Out, "  ~ %s: %s -> %s, %+.6g%s\n", d.Key, d.A, d.B, *d.Delta, rel)
		default:
			fmt.Fprintf(io.Out, "  ~ %s: %s (%s) -> %s (%s)\n", d.Key, d.A, a, d.B, b)
		}
	}
}
