package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/remote"
)

func newCmdRemote(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Manage remotes: S3-compatible buckets that stores share",
		Long: `A remote is an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, SeaweedFS,
versitygw) where pushes upload and from which any machine restores.
Credentials come from the standard AWS variables (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared credentials file and
AWS_PROFILE; they are never written to the store.`,
		Example: "  cas remote add origin s3://ml-artifacts/team-a --endpoint https://minio.example.com:9000\n  cas remote list",
	}
	var add cas.RemoteConfig
	var addJSON, removeJSON bool
	addCmd := &cobra.Command{
		Use:     "add NAME s3://BUCKET[/PREFIX]",
		Short:   "Add a remote (the first one added is the default)",
		Example: "  cas remote add origin s3://ml-artifacts/team-a --endpoint https://minio.example.com:9000\n  cas remote add aws s3://my-bucket --region eu-west-1 --default",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.Repo(cmd.Context())
			if err != nil {
				return err
			}
			add.Name, add.URL = args[0], args[1]
			if add.Connections < 1 || add.Connections > 256 {
				return usageError("--connections %d: want 1 to 256", add.Connections)
			}
			if err := probeNewRemote(cmd.Context(), f.IO, r, add); err != nil {
				return err
			}
			if err := r.AddRemote(add); err != nil {
				if errors.Is(err, cas.ErrRemoteURL) || errors.Is(err, cas.ErrBadRefName) {
					return usageError("%v", err)
				}
				return err
			}
			if addJSON {
				rc, _, err := r.Remote(add.Name)
				if err != nil {
					return err
				}
				return writeJSON(f.IO.Out, rc)
			}
			fmt.Fprintf(f.IO.Out, "added remote %s (%s)\n", add.Name, add.URL)
			return nil
		},
	}
	addCmd.Flags().BoolVar(&addJSON, "json", false, "print the remote's settings as JSON")
	addCmd.Flags().StringVar(&add.Endpoint, "endpoint", "", "the S3 endpoint `URL` (default: AWS)")
	addCmd.Flags().StringVar(&add.Region, "region", "", "the bucket's `REGION`")
	addCmd.Flags().BoolVar(&add.Default, "default", false, "make it the default remote")
	addCmd.Flags().IntVar(&add.Connections, "connections", cas.DefaultConnections, "requests in flight at once: more for a long fat link")
	var asJSON bool
	listCmd := &cobra.Command{
		Use:     "list",
		Short:   "List remotes",
		Example: "  cas remote list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.Repo(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := r.Remotes()
			if err != nil {
				return err
			}
			if asJSON {
				if rs == nil {
					rs = []cas.RemoteConfig{}
				}
				return writeJSON(f.IO.Out, rs)
			}
			for _, x := range rs {
				mark := " "
				if x.Default {
					mark = "*"
				}
				fmt.Fprintf(f.IO.Out, "%s %-12s %s %s\n", mark, x.Name, x.URL, x.Endpoint)
			}
			return nil
		},
	}
	listCmd.Flags().BoolVar(&asJSON, "json", false, "print remotes as JSON")
	removeCmd := &cobra.Command{
		Use:     "remove NAME",
		Short:   "Forget a remote (nothing on it is deleted)",
		Example: "  cas remote remove origin",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.Repo(cmd.Context())
			if err != nil {
				return err
			}
			if err := r.RemoveRemote(args[0]); err != nil {
				return err
			}
			if removeJSON {
				return writeJSON(f.IO.Out, map[string]string{"removed": args[0]})
			}
			fmt.Fprintf(f.IO.Out, "removed remote %s (nothing on it was touched)\n", args[0])
			return nil
		},
	}
	removeCmd.Flags().BoolVar(&removeJSON, "json", false, "print what was removed as JSON")
	cmd.AddCommand(addCmd, listCmd, removeCmd)
	return cmd
}

// openRemote opens the named remote (the default for "") and checks it
// answers, so a bad one fails at once with a line saying which problem it
// has. It returns nil without error when name is "" and there is none.
func openRemote(ctx context.Context, r *cas.Repo, name string) (remote.Backend, *cas.RemoteConfig, error) {
	rc, ok, err := r.Remote(name)
	if err != nil || !ok {
		return nil, nil, err
	}
	cfg, err := rc.S3Config()
	if err != nil {
		return nil, nil, err
	}
	cfg.Clock = r.Clock // the factory's, through the store
	be, err := remote.NewS3(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("remote %s: %w", rc.Name, err)
	}
	r.Transfers = rc.Connections
	if err := be.Check(ctx); err != nil {
		return nil, nil, &userError{msg: fmt.Sprintf("remote %s (%s): %v", rc.Name, rc.URL, err), hint: remoteHint(err)}
	}
	// Its conditional writes are trusted once a probe has shown that the
	// service enforces them (remote.WithProbe).
	return remote.WithProbe(be), &rc, nil
}

// probeNewRemote checks, before a remote is added, that its service
// enforces conditional writes, and fails if it does not: refs shared
// through it could be overwritten silently. When it cannot tell (the
// credentials may only read, or the bucket cannot be reached) it prints a
// one-line warning and lets the remote be added; the first write through
// it probes again.
func probeNewRemote(ctx context.Context, ios *IOStreams, r *cas.Repo, rc cas.RemoteConfig) error {
	cfg, err := rc.S3Config()
	if err != nil {
		return nil // AddRemote says what is wrong
	}
	cfg.Clock = r.Clock
	if _, exists, _ := r.Remote(rc.Name); exists || !cas.ValidRefName(rc.Name) {
		return nil // AddRemote refuses it: nothing to probe
	}
	be, err := remote.NewS3(ctx, cfg)
	if err != nil {
		return fmt.Errorf("remote %s: %w", rc.Name, err)
	}
	err = remote.ProbeConditional(ctx, be)
	var ce *remote.ConditionalError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return &userError{msg: fmt.Sprintf("remote %s not added: %v", rc.Name, conditionalMessage(ce)), hint: conditionalHint}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return err
	}
	why := "these credentials may not write there"
	if !errors.Is(err, remote.ErrAccessDenied) {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // without the probe's own words around it
		}
		why = err.Error()
	}
	fmt.Fprintf(ios.ErrOut, "warning: remote %s: could not check that %s enforces conditional writes (%s); a write through it checks first\n", rc.Name, be.Location(), why)
	return nil
}

// conditionalMessage says in one line that a bucket ignores conditional
// writes and what cas does about it.
func conditionalMessage(ce *remote.ConditionalError) string {
	return fmt.Sprintf("%s ignores conditional writes (%s): cas refuses to share refs or data through it", ce.Location, ce.Header)
}

const conditionalHint = "use an endpoint that enforces If-None-Match and If-Match (AWS S3, MinIO, versitygw 1.8+; not a proxy or gateway that drops them), or push with --local"

func remoteHint(err error) string {
	switch {
	case errors.Is(err, remote.ErrBadCredentials), errors.Is(err, remote.ErrAccessDenied):
		return "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
	case errors.Is(err, remote.ErrNoBucket):
		return "create the bucket, or fix the URL with `cas remote remove` and `cas remote add`"
	case errors.Is(err, remote.ErrUnreachable):
		return "check the --endpoint given to `cas remote add` and the network"
	}
	return ""
}

// targetRemote is the remote a command that publishes writes to: --to
// NAME, else the default one, none with --local.
func targetRemote(ctx context.Context, r *cas.Repo, to string, local bool) (remote.Backend, *cas.RemoteConfig, error) {
	if local {
		if to != "" {
			return nil, nil, usageError("--local and --to exclude each other")
		}
		return nil, nil, nil
	}
	be, rc, err := openRemote(ctx, r, to)
	if err != nil || be == nil {
		return nil, nil, err
	}
	// A bucket that cannot keep refs apart fails before anything is read.
	if p, ok := be.(remote.Prober); ok {
		if err := p.Probe(ctx); err != nil {
			return nil, nil, err
		}
	}
	return be, rc, nil
}

// useRemote lets a command read data the local store lacks from the
// named remote (the default for ""), if there is one.
func useRemote(ctx context.Context, r *cas.Repo, name string) error {
	be, _, err := openRemote(ctx, r, name)
	if err != nil || be == nil {
		return err
	}
	return r.UseRemote(ctx, be)
}

// upload sends everything the remote lacks, then the ref, and says so.
// already counts what went up before (packs mirrored during a push).
func upload(ctx context.Context, ios *IOStreams, quiet bool, r *cas.Repo, be remote.Backend, rc *cas.RemoteConfig, ref string, obj cas.Object, already cas.TransferStats) (*cas.TransferStats, error) {
	prog := &cas.Progress{}
	stop := startProgress(ios, quiet, "uploading", prog)
	st, err := r.Upload(ctx, be, prog)
	stop()
	if err != nil {
		return nil, fmt.Errorf("upload to %s: %w", rc.Name, err)
	}
	st.Objects += already.Objects
	st.Bytes += already.Bytes
	st.Seconds += already.Seconds
	st.Skipped = max(0, st.Skipped-already.Objects) // those it found were ours
	if ref != "" {
		if _, err := r.SetRefOn(ctx, be, ref, obj); err != nil {
			return nil, fmt.Errorf("set ref %s on %s: %w", ref, rc.Name, err)
		}
	}
	if !quiet {
		rate := ""
		if st.Seconds > 0 && st.Bytes > 0 {
			rate = fmt.Sprintf(" (%s/s)", bytesStr(int64(float64(st.Bytes)/st.Seconds)))
		}
		fmt.Fprintf(ios.ErrOut, "uploaded %d objects, %s to %s in %.1fs%s\n", st.Objects, bytesStr(st.Bytes), rc.Name, st.Seconds, rate)
	}
	return st, nil
}

type pullOptions struct {
	IO      *IOStreams
	Factory *Factory
	Ref     string
	From    string
	JSON    bool
	Quiet   bool
}

func newCmdPull(f *Factory, runF func(*pullOptions) error) *cobra.Command {
	opts := &pullOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Bring a tree or file from a remote into the local store",
		Long: `Download from a remote the packs holding everything REF needs, so that it
restores and verifies without the remote. For a run (or a pin of one),
that is the manifest's whole closure: inputs, outputs, logs, package list,
config and code patch. Every object is checked against its digest on
arrival. (restore alone also works without a local copy: it reads just the
bytes it needs from the remote.)`,
		Example: "  cas pull train\n  cas pull blake3:3f2a9c1e --from backup",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(opts)
			}
			return pullRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "the remote `NAME` (default: the default remote)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was downloaded as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func pullRun(ctx context.Context, opts *pullOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	be, rc, err := openRemote(ctx, r, opts.From)
	if err != nil {
		return err
	}
	if be == nil {
		return &userError{msg: "no remote to pull from", hint: "add one with `cas remote add NAME s3://BUCKET`"}
	}
	if err := r.UseRemote(ctx, be); err != nil {
		return err
	}
	// A run or a pin of one brings its whole closure: inputs, outputs,
	// logs, environment objects, the code patch.
	obj, roots, err := resolvePinTarget(ctx, r, opts.Ref)
	if err != nil {
		return err
	}
	prog := &cas.Progress{}
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "pulling", prog)
	st, err := r.Pull(ctx, obj, prog, roots...)
	stop()
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Digest string `json:"digest"`
			Remote string `json:"remote"`
			*cas.TransferStats
		}{obj.Digest.String(), rc.Name, st})
	}
	fmt.Fprintf(opts.IO.Out, "pulled %s from %s: %d objects, %s (%d already here)\n", obj.Digest.Short(), rc.Name, st.Objects, bytesStr(st.Bytes), st.Skipped)
	return nil
}

// readThrough runs fn, a command's reading of the store; if it fails for
// want of data the local store lacks and the store has a default remote
// it is not yet reading from, it attaches that remote (reads then fall
// through to it) and runs fn once more. A remote that cannot be reached
// leaves the first error, with a warning.
func readThrough(ctx context.Context, ios *IOStreams, r *cas.Repo, fn func() error) error {
	err := fn()
	if err == nil || r.HasRemote() || !cas.IsMissing(err) {
		return err
	}
	be, rc, rerr := openRemote(ctx, r, "")
	if rerr != nil || be == nil {
		return err
	}
	if uerr := r.UseRemote(ctx, be); uerr != nil {
		fmt.Fprintf(ios.ErrOut, "cas: warning: could not read from remote %s: %v\n", rc.Name, uerr)
		return err
	}
	return fn()
}
