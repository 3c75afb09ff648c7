package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/manifest"
)

// exitNotReproduced is the exit status of a reproduction that FAILs.
const exitNotReproduced = 4

type reproduceOptions struct {
	IO        *IOStreams
	Factory   *Factory
	Ref       string
	Dir       string
	Repo      string
	Tolerance float64
	Exact     bool
	Metrics   []string
	Curve     bool
	Command   []string
	JSON      bool
}

func newCmdReproduce(f *Factory) *cobra.Command {
	opts := &reproduceOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "reproduce REF [flags] [-- CMD ARGS...]",
		Short: "Re-run a recorded run independently and check its metrics: PASS or FAIL",
		Long: `Re-run a recorded run and say whether it reproduces:

  1. check out the recorded commit (a git worktree of your clone, --repo)
     and apply the recorded uncommitted diff
  2. restore every input where the run had it
  3. show how this machine's environment differs from the recorded one
  4. set the recorded seeds and variables and run the recorded command
     (or CMD), recorded itself as a manifest pointing at the original
  5. compare each metric with the reference by relative difference, and
     each output with the recorded one; where an output differs, each of
     its checkpoints tensor by tensor and RNG state by RNG state

The verdict says how far the run reproduced:

  EXACT                  every output bit-identical, every metric equal
  PASS within tolerance  every metric within --tolerance, but outputs or
                         metrics differ: the report names the first
                         checkpoint and tensor that diverge and what the
                         divergence suggests (tensors differ while RNG
                         states match: an unseeded source or a
                         non-deterministic kernel; RNG states differ:
                         different seeding)
  FAIL                   a metric outside --tolerance or missing, the
                         command failed, or, with --exact, any difference;
                         with --curve, a value of the metrics history
                         outside --tolerance or missing at a recorded step
                         (the first such step is named)

Exit status 0 is EXACT or PASS, 4 is FAIL.`,
		Example: `  cas reproduce baseline
  cas reproduce runs/baseline --tolerance 0.02 --metric acc
  cas reproduce baseline --curve --tolerance 1e-6 --metric loss
  cas reproduce blake3:3f2a9c1e --workdir /tmp/repro -- python3 train.py --epochs 1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				if dash != 1 {
					return usageError("give one REF before --")
				}
				opts.Command = args[1:]
			} else if len(args) != 1 {
				return usageError("give one REF; put a command after --")
			}
			return reproduceRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "workdir", "", "where to check out and run (must not exist; default under .cas/repro/)")
	cmd.Flags().StringVar(&opts.Repo, "repo", "", "the git clone holding the recorded commit (default: the current repository)")
	cmd.Flags().Float64Var(&opts.Tolerance, "tolerance", 0.01, "the largest relative difference that still counts as reproduced")
	cmd.Flags().BoolVar(&opts.Exact, "exact", false, "FAIL unless every output is bit-identical and every metric equal")
	cmd.Flags().StringArrayVar(&opts.Metrics, "metric", nil, "compare only the metric `NAME` (repeatable; default: all)")
	cmd.Flags().BoolVar(&opts.Curve, "curve", false, "also compare the whole metrics history, step by step, within --tolerance")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	return cmd
}

func reproduceRun(ctx context.Context, opts *reproduceOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	// Data the local store lacks (a reviewer's fresh store) comes from the
	// default remote.
	if err := useDefaultRemote(ctx, opts.Factory, r); err != nil {
		return err
	}
	rep, err := manifest.Reproduce(ctx, r, manifest.ReproduceOptions{Ref: opts.Ref, Dir: opts.Dir, Repo: opts.Repo,
		Tolerance: opts.Tolerance, Exact: opts.Exact, Metrics: opts.Metrics, Curve: opts.Curve, Command: opts.Command, Environ: os.Environ(),
		Stdout: opts.IO.ErrOut, Stderr: opts.IO.ErrOut,
		Warn: func(s string) { fmt.Fprintln(opts.IO.ErrOut, "warning: "+s) }})
	if err != nil {
		return err
	}
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else {
		printReproduction(opts.IO, rep)
	}
	if !rep.Pass {
		return exitStatus(exitNotReproduced)
	}
	return nil
}

func printReproduction(ios *IOStreams, rep *manifest.Reproduction) {
	w := ios.Out
	fmt.Fprintf(w, "reproduction of %s\n", rep.Original)
	fmt.Fprintf(w, "recorded as      %s (%s)\n", rep.Manifest, rep.Ref)
	fmt.Fprintf(w, "ran in           %s, exit %d\n", rep.Dir, rep.ExitCode)
	if len(rep.Environment) > 0 {
		fmt.Fprintf(w, "\nenvironment differences (recorded -> here):\n")
		for _, d := range rep.Environment {
			fmt.Fprintf(w, "  %-12s %-24s %s -> %s\n", d.Section, d.Key, orDash(d.A), orDash(d.B))
		}
	}
	fmt.Fprintf(w, "\n%-24s %14s %14s %10s  %s\n", "metric", "reference", "new", "rel diff", "within "+fmt.Sprint(rep.Tolerance))
	for _, c := range rep.Metrics {
		nv, rd, ok := "missing", "-", "no"
		if c.New != nil {
			nv, rd = fmt.Sprintf("%.6g", *c.New), fmt.Sprintf("%.3g", c.RelDiff)
		}
		if c.Within {
			ok = "yes"
		}
		fmt.Fprintf(w, "%-24s %14.6g %14s %10s  %s\n", c.Name, c.Reference, nv, rd, ok)
	}
	if c := rep.Curve; c != nil {
		fmt.Fprintf(w, "\ncurve: %d values of %s compared, largest relative difference %.3g\n", c.Points, strings.Join(c.Names, ", "), c.MaxRelDiff)
		if c.First != nil {
			fmt.Fprintf(w, "  first divergence: %s\n", c.First)
		}
	}
	if len(rep.Outputs) > 0 {
		fmt.Fprintf(w, "\n%-24s %-14s %-14s %s\n", "output", "reference", "new", "")
		for _, o := range rep.Outputs {
			same := "identical"
			if !o.Identical {
				same = "DIFFERS"
			}
			fmt.Fprintf(w, "%-24s %-14s %-14s %s\n", displayName(o.Name), shortOf(o.Reference), shortOf(o.New), same)
			for _, c := range o.Checkpoints {
				switch {
				case c.Identical:
					fmt.Fprintf(w, "  %s: identical\n", displayName(c.Path))
				case c.Missing:
					fmt.Fprintf(w, "  %s: missing from the reproduction\n", displayName(c.Path))
				default:
					fmt.Fprintf(w, "  %s: %d of %d tensors differ, %d of %d RNG states differ\n", displayName(c.Path), c.TensorsDiffer, c.Tensors, len(c.RNGDiffer), c.RNGStates)
				}
			}
		}
	}
	verdict := rep.Verdict
	if rep.Reason != "" {
		verdict += ": " + rep.Reason
	}
	fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(verdict))
	if rep.Diagnosis != "" {
		fmt.Fprintf(w, "%s\n", rep.Diagnosis)
	}
}
