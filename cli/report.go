package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/buildinfo"
	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/manifest/attest"
	"github.com/cas-ml/cas/report"
)

type reportOptions struct {
	IO        *IOStreams
	Factory   *Factory
	Ref       string
	Out       string
	Format    string
	Runs      []string
	Metrics   []string
	Verify    bool
	Key       string
	Tolerance float64
	NoEnv     bool
	From      string
	JSON      bool
}

func newCmdReport(f *Factory) *cobra.Command {
	opts := &reportOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "report REF [--out FILE] [--format html|md]",
		Short: "Write a page a reviewer can read: verdict, lineage, plots, environment, code",
		Long: `Write one self-contained page about a run, a pin, or several runs: the
verdict at the top (who signed the pin and with which key, whether every
byte was verified, the RNG fingerprints of each checkpoint, and each
reproduction's PASS or FAIL with its metrics recorded and reproduced),
the lineage as a picture (inputs -> run -> outputs and checkpoints -> pins
and reproductions, each with its digest, size and the command that
restores it), the spread of each metric over repeated runs (points, mean
and Student-t 95 % interval: the numbers cas stats --metric prints), the
per-step curves of a metrics history, the environment (highlighted where
this machine differs) and the code (commit, branch, remote, dirty, and the
recorded diff inline).

The HTML page needs nothing else: no script, no font, no request of any
kind; the plots are inline SVG and it prints. --format md writes the same
as Markdown tables with the plots as SVG files beside it.

REF is a run (name, ref or digest), a pin (NAME or pins/NAME), or a name
prefix ending in * for runs to compare. A run named NAME-sSEED (cas run
--repeat) brings its sibling runs; --runs names others. --verify re-reads
and re-hashes everything the run (or pin) binds first; --key checks a
pin's signature; --from NAME reads the remote alone, as a reviewer who
trusts nothing local. docs/report.md says what each part means.

The exit status follows the verdict; the page is written either way:

  0  no line FAILs (each is PASS, UNCHECKED or NONE)
  3  the bytes, the RNG states or the pin's signature FAIL: damaged data
     or a signature that does not verify, as cas verify exits
  4  only a reproduction FAILs, as cas reproduce exits`,
		Example: `  cas report paper/fig3 --from origin --verify --key alice.pub
  cas report paper/fig3 --verify
  cas report baseline --out baseline.html
  cas report 'lr0.1-s*' --metric acc --out sweep.md
  cas report baseline --runs 'baseline-s*' --format md`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return writeReportRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Out, "out", "o", "", "write to `FILE` (default: report-NAME.html or .md in the current directory)")
	fl.StringVar(&opts.Format, "format", "", "html or md (default: from --out's extension, else html)")
	fl.StringArrayVar(&opts.Runs, "runs", nil, "compare with the runs `REF` (a name, digest or prefix*; repeatable)")
	fl.StringArrayVar(&opts.Metrics, "metric", nil, "show the spread of the metric `NAME` only (repeatable; default: all)")
	fl.BoolVar(&opts.Verify, "verify", false, "re-read and re-hash everything the run binds first")
	fl.StringVar(&opts.Key, "key", "", "check the pin's signature with the public key in `PUBKEY` (cas keygen)")
	fl.Float64Var(&opts.Tolerance, "tolerance", 0.01, "the CV repeated runs may have, and the relative difference every metric may have in a reproduction (unless it was run with a smaller one)")
	fl.BoolVar(&opts.NoEnv, "no-env", false, "do not compare the recorded environment with this machine's")
	fl.StringVar(&opts.From, "from", "", "report on what the remote `NAME` holds, trusting nothing local (as verify --from)")
	fl.BoolVar(&opts.JSON, "json", false, "print what was written and the verdict as JSON")
	return cmd
}

// reportOutput is report's --json object.
type reportOutput struct {
	Files   []string      `json:"files"`
	Run     string        `json:"run"`
	Digest  string        `json:"digest"`
	OK      bool          `json:"ok"`
	Verdict []report.Line `json:"verdict"`
}

func writeReportRun(ctx context.Context, opts *reportOptions) error {
	format := opts.Format
	if format == "" {
		format = "html"
		if strings.EqualFold(filepath.Ext(opts.Out), ".md") {
			format = "md"
		}
	}
	if format != "html" && format != "md" {
		return usageError("--format %q: want html or md", opts.Format)
	}
	if err := manifest.CheckTolerance(opts.Tolerance); err != nil {
		return usageError("--%v", err)
	}
	ro := report.Options{Ref: opts.Ref, Runs: opts.Runs, Metrics: opts.Metrics, Verify: opts.Verify,
		Tolerance: opts.Tolerance, Generated: opts.Factory.Now(), Tool: buildinfo.Tool()}
	if opts.Key != "" {
		pub, err := attest.LoadPublicKey(opts.Key)
		if err != nil {
			return keyError(err)
		}
		ro.Key = pub
	}
	if !opts.NoEnv {
		ro.Here = func(m *manifest.Manifest) *report.Machine {
			python := "python3"
			if m.Environment.Python != nil {
				python = manifest.PythonFor(m.Command)
			}
			es := manifest.CaptureEnv(ctx, python, os.Environ())
			return &report.Machine{Manifest: &manifest.Manifest{Environment: es.Env, Variables: manifest.CaptureVars(os.Environ(), nil)}, Packages: es.Packages}
		}
	}
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	if opts.From != "" {
		// A reviewer's view: the remote's refs, pins and bytes alone.
		be, _, err := opts.Factory.openRemote(ctx, r, opts.From)
		if err != nil {
			return err
		}
		if r, err = cas.OpenRemoteOnly(ctx, be); err != nil {
			return err
		}
		defer r.Close()
	} else if err := useDefaultRemote(ctx, opts.Factory, r); err != nil {
		// Data the local store lacks comes from the default remote.
		return err
	}
	prog := &cas.Progress{}
	ro.Progress = prog
	stop := startProgress(opts.IO, opts.JSON || !opts.Verify, "verifying", prog)
	rep, err := report.Build(ctx, r, ro)
	stop()
	if err != nil {
		var nm *report.NoMatchError
		if errors.As(err, &nm) {
			return &userError{msg: err.Error(), hint: "`cas log` lists runs"}
		}
		return err
	}
	out := opts.Out
	if out == "" {
		out = "report-" + rep.FileStem() + "." + format
	}
	if !filepath.IsAbs(out) {
		dir, err := opts.Factory.WorkDir()
		if err != nil {
			return err
		}
		out = filepath.Join(dir, out)
	}
	var files []string
	if format == "md" {
		files, err = rep.WriteMarkdown(out)
	} else {
		err = rep.WriteHTML(out)
		files = []string{out}
	}
	if err != nil {
		return err
	}
	verdict := rep.Verdict()
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, reportOutput{Files: files, Run: rep.Run.Name, Digest: rep.Run.Digest.String(), OK: rep.OK(), Verdict: verdict}); err != nil {
			return err
		}
	} else {
		for _, l := range verdict {
			fmt.Fprintf(opts.IO.Out, "%-13s %-9s %s\n", l.Key, l.Word, displayText(l.Text))
		}
		fmt.Fprintf(opts.IO.Out, "wrote %s\n", files[len(files)-1])
	}
	if code := reportExit(verdict); code != exitOK {
		return exitStatus(code)
	}
	return nil
}

// reportExit is the exit status of a report's verdict: what the command
// that checks a FAILing line exits with. Damage (bytes, RNG states) and a
// signature that does not verify are cas verify's exitDamaged, and come
// first: with them nothing else on the page stands; a reproduction that
// FAILs is cas reproduce's exitNotReproduced.
func reportExit(verdict []report.Line) int {
	code := exitOK
	for _, l := range verdict {
		switch {
		case l.State != "fail":
		case l.Key == "reproduction":
			if code == exitOK {
				code = exitNotReproduced
			}
		default:
			code = exitDamaged
		}
	}
	return code
}
