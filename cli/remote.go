package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	cmd.AddCommand(newCmdRemoteAdd(f), newCmdRemoteList(f), newCmdRemoteRemove(f), newCmdRemoteUpgrade(f),
		newCmdRemoteSetDefault(f), newCmdRemoteRename(f))
	return cmd
}

type remoteAddOptions struct {
	IO      *IOStreams
	Factory *Factory
	Remote  remote.Config
	JSON    bool
	Check   bool
}

func newCmdRemoteAdd(f *Factory) *cobra.Command {
	opts := &remoteAddOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "add NAME s3://BUCKET[/PREFIX]",
		Short: "Add a remote (the first one added is the default)",
		Long: `Add a remote: an S3 bucket, and a prefix inside it, that pushes upload to
and any machine restores from. The first one added is the default.

The bucket name must follow S3's rules (3 to 63 lower-case letters,
digits, dots and hyphens) and the endpoint must be a URL with its scheme
(http://127.0.0.1:7070, https://minio.example.com); both are checked before
anything is recorded. The bucket is then probed: a remote that cannot be
reached is added with a warning, unless --check, which refuses it.`,
		Example: "  cas remote add origin s3://ml-artifacts/team-a --endpoint https://minio.example.com:9000\n  cas remote add aws s3://my-bucket --region eu-west-1 --default\n  cas remote add lab s3://lab-data --endpoint http://10.0.0.5:7070 --check",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Remote.Name, opts.Remote.URL = args[0], args[1]
			return remoteAddRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the remote's settings as JSON")
	cmd.Flags().StringVar(&opts.Remote.Endpoint, "endpoint", "", "the S3 endpoint `URL` (default: AWS)")
	cmd.Flags().StringVar(&opts.Remote.Region, "region", "", "the bucket's `REGION` (default: asked of the server and recorded)")
	cmd.Flags().BoolVar(&opts.Remote.Default, "default", false, "make it the default remote")
	cmd.Flags().IntVar(&opts.Remote.Connections, "connections", remote.DefaultConnections, "requests in flight at once: more for a long fat link")
	cmd.Flags().BoolVar(&opts.Check, "check", false, "refuse the remote unless its bucket answers")
	return cmd
}

func remoteAddRun(ctx context.Context, opts *remoteAddOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	add := opts.Remote
	// Checked before the probe, which may take a while; the flag
	// cannot leave it unset.
	if err := remote.CheckConnections(add.Connections); err != nil {
		return usageError("--%v", err) // --connections N: want …
	}
	if err := checkRemoteConfig(add); err != nil {
		return err
	}
	if opts.Check {
		if err := checkReachable(ctx, r, add); err != nil {
			return err
		}
	}
	region, err := probeNewRemote(ctx, opts.IO, r, add)
	if err != nil {
		return err
	}
	if add.Region == "" {
		add.Region = region // later commands need not ask for it
	}
	if err := r.AddRemote(add); err != nil {
		if errors.Is(err, remote.ErrURL) || errors.Is(err, cas.ErrBadRefName) || errors.Is(err, remote.ErrBucketName) || errors.Is(err, remote.ErrEndpoint) {
			return usageError("%v", err)
		}
		return err
	}
	if opts.JSON {
		rc, _, err := remote.LookupConfig(r.RemotesFile(), add.Name)
		if err != nil {
			return err
		}
		return writeJSON(opts.IO.Out, rc)
	}
	fmt.Fprintf(opts.IO.Out, "added remote %s (%s)\n", add.Name, add.URL)
	return nil
}

// checkRemoteConfig refuses, as a usage error with a hint, a remote whose
// URL, bucket name or endpoint could never work: before any request, and
// before anything is recorded.
func checkRemoteConfig(c remote.Config) error {
	err := c.Check()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, remote.ErrBucketName):
		return &userError{msg: err.Error(), code: exitUsage,
			hint: "S3 bucket names are 3 to 63 lower-case letters, digits, dots and hyphens; a path inside the bucket goes after it: s3://BUCKET/PREFIX"}
	case errors.Is(err, remote.ErrEndpointCredentials):
		return &userError{msg: "--endpoint: " + err.Error(), code: exitUsage,
			hint: "give keys through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), never in a URL"}
	case errors.Is(err, remote.ErrEndpoint):
		return &userError{msg: "--endpoint: " + err.Error(), code: exitUsage,
			hint: "give the scheme: --endpoint http://127.0.0.1:7070 for a local server, https://… for one behind TLS"}
	case errors.Is(err, remote.ErrURL):
		return &userError{msg: err.Error(), code: exitUsage, hint: "for example s3://ml-artifacts/team-a"}
	}
	return usageError("%v", err)
}

// checkReachable asks the bucket of a remote about to be added whether it
// is there and these credentials may use it (remote add --check).
func checkReachable(ctx context.Context, r *cas.Repo, c remote.Config) error {
	cfg, err := c.S3Config()
	if err != nil {
		return err
	}
	cfg.Clock = r.Clock
	be, err := remote.NewS3(ctx, cfg)
	if err != nil {
		return fmt.Errorf("remote %s: %w", c.Name, err)
	}
	if err := be.Check(ctx); err != nil {
		err = be.Explain(err)
		hint := remoteHint(err)
		if errors.Is(err, remote.ErrNoBucket) {
			hint = "create the bucket, or add the remote with the bucket's right name"
		}
		return &userError{msg: fmt.Sprintf("remote %s not added: %v", c.Name, err), hint: hint}
	}
	return nil
}

type remoteSetDefaultOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	JSON    bool
}

func newCmdRemoteSetDefault(f *Factory) *cobra.Command {
	opts := &remoteSetDefaultOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:     "set-default NAME",
		Short:   "Make a remote the default: where push uploads and reads fall through",
		Example: "  cas remote set-default backup",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			r, err := opts.Factory.Repo(cmd.Context())
			if err != nil {
				return err
			}
			if err := remote.SetDefaultConfig(r.RemotesFile(), opts.Name); err != nil {
				return err
			}
			if opts.JSON {
				return writeJSON(opts.IO.Out, map[string]string{"default": opts.Name})
			}
			fmt.Fprintf(opts.IO.Out, "default remote: %s\n", opts.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the new default as JSON")
	return cmd
}

type remoteRenameOptions struct {
	IO       *IOStreams
	Factory  *Factory
	Old, New string
	JSON     bool
}

func newCmdRemoteRename(f *Factory) *cobra.Command {
	opts := &remoteRenameOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:     "rename OLD NEW",
		Short:   "Rename a remote (nothing on it changes)",
		Example: "  cas remote rename origin lab",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Old, opts.New = args[0], args[1]
			return remoteRenameRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the old and new names as JSON")
	return cmd
}

func remoteRenameRun(ctx context.Context, opts *remoteRenameOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	if !cas.ValidRefName(opts.New) || strings.Contains(opts.New, "/") {
		return usageError("remote name %q: %v", opts.New, cas.ErrBadRefName)
	}
	if err := remote.RenameConfig(r.RemotesFile(), opts.Old, opts.New); err != nil {
		return err
	}
	if err := r.RenamePending(opts.Old, opts.New); err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, map[string]string{"renamed": opts.Old, "to": opts.New})
	}
	fmt.Fprintf(opts.IO.Out, "renamed remote %s to %s\n", opts.Old, opts.New)
	return nil
}

type remoteListOptions struct {
	IO      *IOStreams
	Factory *Factory
	JSON    bool
}

func newCmdRemoteList(f *Factory) *cobra.Command {
	opts := &remoteListOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List remotes",
		Example: "  cas remote list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return remoteListRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print remotes as JSON")
	return cmd
}

func remoteListRun(ctx context.Context, opts *remoteListOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	rs, err := remote.LoadConfigs(r.RemotesFile())
	if err != nil {
		return err
	}
	if opts.JSON {
		if rs == nil {
			rs = []remote.Config{}
		}
		return writeJSON(opts.IO.Out, rs)
	}
	for _, x := range rs {
		mark := " "
		if x.Default {
			mark = "*"
		}
		fmt.Fprintf(opts.IO.Out, "%s %-12s %s %s\n", mark, x.Name, x.URL, x.Endpoint)
	}
	return nil
}

type remoteRemoveOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	Force   bool
	JSON    bool
}

func newCmdRemoteRemove(f *Factory) *cobra.Command {
	opts := &remoteRemoveOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a remote (nothing on it is deleted)",
		Long: `Forget a remote: its name and URL leave this store's remotes file, and
nothing on the remote is touched.

A remote the store still owes uploads to (pushes and runs stored while it
could not be reached) is not forgotten unless --force gives those uploads
up: 'cas sync --to NAME' sends them first. The data stays in this store
either way.`,
		Example: "  cas remote remove origin\n  cas remote remove --force old-bucket",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return remoteRemoveRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "forget it even if uploads to it are owed, giving them up")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was removed as JSON")
	return cmd
}

func remoteRemoveRun(ctx context.Context, opts *remoteRemoveOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	owed, err := r.PendingUploads(opts.Name)
	if err != nil {
		return err
	}
	if len(owed) > 0 && !opts.Force {
		return &userError{
			msg:  fmt.Sprintf("remote %s is owed %s stored here only", opts.Name, count(len(owed), "upload")),
			hint: fmt.Sprintf("run `cas sync --to %s` first, or give them up with `cas remote remove --force %s`", opts.Name, opts.Name),
		}
	}
	// Uploads owed to a name no remote has any more (a rename cut short
	// leaves some behind) are given up by --force all the same.
	var gone *remote.NoRemoteError
	if err := remote.RemoveConfig(r.RemotesFile(), opts.Name); err != nil && (len(owed) == 0 || !errors.As(err, &gone)) {
		return err
	}
	for _, p := range owed {
		if err := r.ClearPending(p); err != nil {
			return err
		}
	}
	if opts.JSON {
		out := map[string]any{"removed": opts.Name}
		if len(owed) > 0 {
			out["uploads_given_up"] = len(owed)
		}
		return writeJSON(opts.IO.Out, out)
	}
	if gone == nil {
		fmt.Fprintf(opts.IO.Out, "removed remote %s (nothing on it was touched)\n", opts.Name)
	}
	if len(owed) > 0 {
		fmt.Fprintf(opts.IO.Out, "gave up %s owed to it (the data stays in this store)\n", count(len(owed), "upload"))
	}
	return nil
}

// openRemote opens the named remote (the default for "") and checks it
// answers, so a bad one fails at once with a line saying which problem it
// has. It returns nil without error when name is "" and there is none.
func openRemote(ctx context.Context, r *cas.Repo, name string) (remote.Backend, *remote.Config, error) {
	be, rc, err := dialRemote(ctx, r, name)
	if err != nil || be == nil {
		return nil, nil, err
	}
	if err := be.Check(ctx); err != nil {
		return nil, nil, remoteFailure(rc, err)
	}
	// Its conditional writes are trusted once a probe has shown that the
	// service enforces them (remote.WithProbe).
	return remote.WithProbe(be), rc, nil
}

// dialRemote opens the named remote (the default for "") without a
// request: a command whose first request tells as much as Check does
// saves one (remoteFailure then says what went wrong).
func dialRemote(ctx context.Context, r *cas.Repo, name string) (*remote.S3, *remote.Config, error) {
	rc, ok, err := remote.LookupConfig(r.RemotesFile(), name)
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
	return be, &rc, nil
}

// remoteFailure is the one line, with a hint, of a remote that did not
// answer as a remote should: no such bucket, credentials refused, no
// access, no connection. Other errors come back as they are.
func remoteFailure(rc *remote.Config, err error) error {
	hint := remoteHint(err)
	if hint == "" {
		return err
	}
	return &userError{msg: fmt.Sprintf("remote %s (%s): %v", rc.Name, rc.URL, err), hint: hint, cause: err}
}

// probeNewRemote checks, before a remote is added, that its service
// enforces conditional writes, and fails if it does not: refs shared
// through it could be overwritten silently. When it cannot tell (the
// credentials may only read, or the bucket cannot be reached) it prints a
// one-line warning and lets the remote be added; the first write through
// it probes again.
//
// It returns the bucket's region once the probe's signed requests have
// reached the bucket (passed, or been refused for lack of write
// permission): the one given, or the one learnt on the way (no request
// more). Else it returns "", and the remote is added without one, which
// each command that uses it then asks for.
func probeNewRemote(ctx context.Context, ios *IOStreams, r *cas.Repo, rc remote.Config) (string, error) {
	cfg, err := rc.S3Config()
	if err != nil {
		return "", nil // AddRemote says what is wrong
	}
	cfg.Clock = r.Clock
	if _, exists, _ := remote.LookupConfig(r.RemotesFile(), rc.Name); exists || !cas.ValidRefName(rc.Name) {
		return "", nil // AddRemote refuses it: nothing to probe
	}
	be, err := remote.NewS3(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("remote %s: %w", rc.Name, err)
	}
	err = remote.ProbeConditional(ctx, be)
	var ce *remote.ConditionalError
	switch {
	case err == nil:
		// The region the probe's requests were signed for: given, or
		// learnt without another request. Failing to learn it costs each
		// later command one request, and nothing else.
		region, _ := be.BucketRegion(ctx)
		return region, nil
	case errors.As(err, &ce):
		return "", &userError{msg: fmt.Sprintf("remote %s not added: %v", rc.Name, conditionalMessage(ce)), hint: conditionalHint}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return "", err
	}
	region := ""
	why := "these credentials may not write there"
	if errors.Is(err, remote.ErrAccessDenied) {
		region, _ = be.BucketRegion(ctx) // as above: signed, then refused
	} else {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // without the probe's own words around it
		}
		why = err.Error()
	}
	fmt.Fprintf(ios.ErrOut, "warning: remote %s: could not check that %s enforces conditional writes (%s); a write through it checks first\n", rc.Name, be.Location(), why)
	return region, nil
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
func (f *Factory) targetRemote(ctx context.Context, r *cas.Repo, to string, local bool) (remote.Backend, *remote.Config, error) {
	if local {
		if to != "" {
			return nil, nil, usageError("--local and --to exclude each other")
		}
		return nil, nil, nil
	}
	be, rc, err := f.openRemote(ctx, r, to)
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
func useRemote(ctx context.Context, f *Factory, r *cas.Repo, name string) error {
	be, err := f.readRemote(ctx, r, name)
	if err != nil || be == nil {
		return err
	}
	return be.use(ctx, r)
}

// useDefaultRemote is useRemote of the default remote for a command that
// can do without it (report, reproduce): what the local store holds is
// enough for them when the data is here, so a default remote that cannot
// be read is a warning, not the command's failure.
func useDefaultRemote(ctx context.Context, f *Factory, r *cas.Repo) error {
	err := useRemote(ctx, f, r, "")
	if err == nil || ctx.Err() != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "cas: warning: could not read from the default remote (%v): going on with what this store holds\n",
		strings.ReplaceAll(err.Error(), "\n", "; "))
	return nil
}

// readingRemote is a remote opened for reading: its first request, made
// by use, stands for Check (a fresh restore is a handful of requests, and
// one of them was Check's).
type readingRemote struct {
	be remote.Backend
	rc *remote.Config
	s3 *remote.S3 // nil when a test's factory opened be, checked
}

// use lets r read from the remote, saying in one line what is wrong
// with a remote that does not answer.
func (rr *readingRemote) use(ctx context.Context, r *cas.Repo) error {
	err := r.UseRemote(ctx, rr.be)
	if err != nil && rr.s3 != nil {
		err = remoteFailure(rr.rc, rr.s3.Explain(err))
	}
	return err
}

// reportUpload says what went up to a remote, unless quiet.
func reportUpload(ios *IOStreams, quiet bool, rc *remote.Config, st *cas.TransferStats) {
	if quiet || st == nil {
		return
	}
	if st.Objects == 0 {
		fmt.Fprintf(ios.ErrOut, "nothing to upload: %s already had all the data\n", rc.Name)
		return
	}
	fmt.Fprintf(ios.ErrOut, "uploaded %s, %s to %s%s\n", count(st.Objects, "object"), bytesStr(st.Bytes), rc.Name, took(time.Duration(st.Seconds*float64(time.Second)), st.Bytes))
}

// readThrough runs fn, a command's reading of the store; if it fails for
// want of data the local store lacks and the store has a default remote
// it is not yet reading from, it attaches that remote (reads then fall
// through to it) and runs fn once more. A remote that cannot be reached
// leaves the first error, with a warning.
func readThrough(ctx context.Context, f *Factory, r *cas.Repo, fn func() error) error {
	err := fn()
	if err == nil || r.HasRemote() || f.readThroughFailed || !cas.IsMissing(err) {
		return err
	}
	be, rerr := f.readRemote(ctx, r, "")
	if rerr != nil || be == nil {
		return err
	}
	if uerr := be.use(ctx, r); uerr != nil {
		f.readThroughFailed = true
		fmt.Fprintf(f.IO.ErrOut, "cas: warning: could not read from remote %s: %v\n", be.rc.Name, uerr)
		return err
	}
	return fn()
}
