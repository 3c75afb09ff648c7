package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/remote"
)

type runOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	Inputs  []string
	Outputs []string
	Seed    int64
	HasSeed bool
	Rank    int
	Config  string
	Metrics string
	EnvVars []string
	Command []string
	JSON    bool
	Repeat  int
	Local   bool // store the run locally only
}

func newCmdRun(f *Factory) *cobra.Command {
	opts := &runOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command and record a manifest binding it to data, code, environment and seeds",
		Long: `Run CMD and record everything needed to reproduce it as a manifest, stored in
the store and named runs/NAME:

  before  every --input is pushed (a PATH) or resolved (a REF) and its
          digest recorded; the git commit, branch, remote, dirty flag,
          uncommitted diff and untracked files; OS, CPU, memory, Python,
          installed packages, torch/CUDA/cuDNN, GPUs; determinism variables
  during  CMD runs with PYTHONHASHSEED and CUBLAS_WORKSPACE_CONFIG=:4096:8
          set (unless you set them), and CAS_SEED, CAS_RANK and CAS_RUN_DIR
          exported; its output is shown and also kept as log objects;
          Ctrl-C goes to CMD
  after   every --output is pushed, the --metrics file (a JSON object of
          numbers) is read, and the manifest is written

A command that fails or is interrupted still gets a manifest; cas run exits
with CMD's exit status. Variables whose names look secret (KEY, TOKEN,
SECRET, PASSWORD, ...) are never recorded, and their values are removed
from the stored logs and command line; so are the values of arguments that
look like credentials (--api-key V, --token=V, --password V) and the
passwords in URLs (user:PASSWORD@host).`,
		Example: `  cas run --seed 7 --input data=./data --output ./out --metrics out/metrics.json -- python3 train.py
  cas run --name baseline --config cfg.yaml -- python3 train.py --config cfg.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return usageError("put the command after --: cas run [flags] -- CMD ARGS...")
			}
			opts.Command = args
			opts.HasSeed = cmd.Flags().Changed("seed")
			if err := opts.checkEnvVars(); err != nil {
				return err
			}
			if opts.Repeat < 1 {
				return usageError("--repeat must be at least 1")
			}
			if opts.Repeat > 1 && !opts.HasSeed {
				return usageError("--repeat needs --seed S: the runs get seeds S, S+1, ...")
			}
			return runRun(cmd.Context(), opts)
		},
	}
	addRunFlags(cmd, opts)
	cmd.Flags().IntVar(&opts.Repeat, "repeat", 1, "run `N` times with seeds S..S+N-1, named NAME-sSEED; then `cas stats --metric M 'NAME-s*'`")
	cmd.Flags().BoolVar(&opts.Local, "local", false, "store the run locally only; upload nothing")
	return cmd
}

// addRunFlags declares the flags run and record share.
func addRunFlags(cmd *cobra.Command, opts *runOptions) {
	fl := cmd.Flags()
	fl.StringVarP(&opts.Name, "name", "n", "", "name the run: the manifest becomes runs/`NAME` (default: its start time)")
	fl.StringArrayVarP(&opts.Inputs, "input", "i", nil, "an input as `NAME=PATH` (pushed) or NAME=REF (already stored); repeatable")
	fl.StringArrayVarP(&opts.Outputs, "output", "o", nil, "a `PATH` the command writes, pushed after it; repeatable")
	fl.Int64Var(&opts.Seed, "seed", 0, "the base seed: exported as CAS_SEED and PYTHONHASHSEED")
	fl.IntVar(&opts.Rank, "rank", 0, "the process rank: exported as CAS_RANK")
	fl.StringVar(&opts.Config, "config", "", "a config `FILE` to keep with the run")
	fl.StringVar(&opts.Metrics, "metrics", "", "a JSON `FILE` of metrics the command writes")
	fl.StringArrayVar(&opts.EnvVars, "env", nil, "also record the variable `NAME` (never a secret); repeatable")
	fl.BoolVar(&opts.JSON, "json", false, "print the manifest as JSON")
}

// envName is what --env takes: a variable's name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnvVars refuses an --env that is not a variable's name (NAME=VALUE:
// the value comes from the environment), and warns of one that will
// record nothing: unset, or named like a secret. A refusal never echoes
// what follows '=': it may be a secret, and stderr goes to terminals and
// CI logs.
func (opts *runOptions) checkEnvVars() error {
	for _, n := range opts.EnvVars {
		name, _, hasValue := strings.Cut(n, "=")
		shown := name
		if hasValue {
			shown += "=…"
		}
		if hasValue && envName.MatchString(name) {
			return usageError("--env %s: give the variable's name; its value is read from the environment (%s=… cas run --env %s …)", shown, name, name)
		}
		if !envName.MatchString(n) {
			return usageError("--env %q: not a variable's name (letters, digits and _, not first a digit)", shown)
		}
		switch _, set := os.LookupEnv(n); {
		case manifest.IsSecretName(n):
			fmt.Fprintf(opts.IO.ErrOut, "warning: --env %s: named like a secret, so never recorded\n", n)
		case !set:
			fmt.Fprintf(opts.IO.ErrOut, "warning: --env %s: not set, so nothing is recorded for it\n", n)
		}
	}
	return nil
}

func (opts *runOptions) manifestOptions() manifest.Options {
	mo := manifest.Options{Name: opts.Name, Inputs: opts.Inputs, Outputs: opts.Outputs, Rank: opts.Rank,
		Config: opts.Config, Metrics: opts.Metrics, EnvVars: opts.EnvVars, Command: opts.Command,
		Environ: os.Environ(), Stdout: opts.IO.Out, Stderr: opts.IO.ErrOut,
		Warn: func(s string) { fmt.Fprintln(opts.IO.ErrOut, "warning: "+s) }}
	if opts.HasSeed {
		seed := opts.Seed
		mo.Seed = &seed
	}
	if wd, err := opts.Factory.WorkDir(); err == nil {
		mo.WorkDir = wd
	}
	return mo
}

// exitStatus ends cas with a command's exit status and no message.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func runRun(ctx context.Context, opts *runOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	// With a default remote, the run's objects go there too; a bad remote
	// fails before the command runs, one that cannot be reached leaves
	// the run local, the upload owed (cas sync).
	var be remote.Backend
	var rc, offline *remote.Config
	if !opts.Local {
		be, rc, err = opts.Factory.openRemote(ctx, r, "")
		if offline, err = offlineDefault(r, "", err); err != nil {
			return err
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	base := opts.Name
	if opts.Repeat > 1 && base == "" {
		base = manifest.NewRunName(opts.Factory.Now())
	}
	var firstErr error
	for i := range opts.Repeat {
		mo := opts.manifestOptions()
		mo.Signals = sigs
		if opts.Repeat > 1 {
			seed := opts.Seed + int64(i)
			mo.Seed = &seed
			mo.Name = fmt.Sprintf("%s-s%d", base, seed)
		}
		res, err := manifest.Run(ctx, r, mo)
		if err != nil {
			return err
		}
		if be != nil {
			prog := &cas.Progress{}
			stop := startProgress(opts.IO, opts.JSON, "uploading", prog)
			st, err := r.Publish(context.WithoutCancel(ctx), be, res.Ref, res.Object, prog)
			stop()
			if err != nil {
				return err
			}
			reportUpload(opts.IO, opts.JSON, rc, st)
		} else if offline != nil {
			if err := notePending(ctx, opts.Factory, r, offline, res.Ref, res.Object); err != nil {
				return err
			}
		}
		if err := reportRun(opts, res); err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break // interrupted: the rest do not run
		}
	}
	return firstErr
}

func reportRun(opts *runOptions, res *manifest.Result) error {
	m := res.Manifest
	if !m.Code.Git {
		// As the manifest records it: code.git false, code.reason.
		fmt.Fprintf(opts.IO.ErrOut, "cas: warning: the code is not captured (%s): cas reproduce will not find it; run inside a git repository\n", m.Code.Reason)
	}
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, struct {
			Digest   string             `json:"digest"`
			Ref      string             `json:"ref"`
			Manifest *manifest.Manifest `json:"manifest"`
		}{res.Digest.String(), res.Ref, m}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(opts.IO.ErrOut, "cas: run %s %s (exit %d, %.1fs): manifest %s\n", m.Name, m.Status, m.ExitCode, m.Seconds, res.Ref)
		fmt.Fprintln(opts.IO.Out, res.Digest)
	}
	if m.ExitCode != 0 {
		return exitStatus(m.ExitCode)
	}
	return nil
}

func newCmdRecord(f *Factory) *cobra.Command {
	opts := &runOptions{IO: f.IO, Factory: f}
	var command string
	var exitCode int
	cmd := &cobra.Command{
		Use:   "record --command CMD [flags]",
		Short: "Record the manifest of a run that already happened",
		Long: `Record a manifest for a run that already happened: the same capture as
'cas run' (inputs, code, environment, variables, outputs, metrics), with
the command and exit status as you give them. The status is "unknown"
without --exit-code.`,
		Example: `  cas record --command "python3 train.py --lr 0.1" --exit-code 0 --seed 7 --output ./out --metrics out/metrics.json
  cas record --command "make train" --input data=./data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if command == "" {
				return usageError("--command is required")
			}
			opts.Command = splitCommand(command)
			opts.HasSeed = cmd.Flags().Changed("seed")
			if err := opts.checkEnvVars(); err != nil {
				return err
			}
			r, err := opts.Factory.Repo(cmd.Context())
			if err != nil {
				return err
			}
			mo := opts.manifestOptions()
			if cmd.Flags().Changed("exit-code") {
				mo.ExitCode = &exitCode
			}
			res, err := manifest.Record(cmd.Context(), r, mo)
			if err != nil {
				return err
			}
			if err := reportRun(opts, res); err != nil {
				var es exitStatus
				if errors.As(err, &es) {
					return nil // recording a failed run is not a failure
				}
				return err
			}
			return nil
		},
	}
	addRunFlags(cmd, opts)
	cmd.Flags().StringVar(&command, "command", "", "the command line that ran")
	cmd.Flags().IntVar(&exitCode, "exit-code", 0, "its exit status, if known")
	return cmd
}

// splitCommand splits a command line at white space, keeping quoted parts.
func splitCommand(s string) []string {
	var out []string
	var cur []rune
	var quote rune
	inWord := false
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur = append(cur, c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, string(cur))
				cur, inWord = cur[:0], false
			}
		default:
			cur, inWord = append(cur, c), true
		}
	}
	if inWord {
		out = append(out, string(cur))
	}
	return out
}
