package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

type pushOptions struct {
	IO       *IOStreams
	Factory  *Factory
	Paths    []string
	Name     string
	NameSet  bool // --name was given, perhaps empty
	Excludes []string
	JSON     bool
	Quiet    bool
	To       string
	Local    bool
}

func newCmdPush(f *Factory) *cobra.Command {
	opts := &pushOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "push PATH...",
		Short: "Store files and directories and print their digest",
		Long: `Store files and directories in the store and print the digest that names them.

Files are cut into content-defined chunks and each chunk is kept once, so
pushing a dataset again, or a new version of it, stores only what changed.
Unchanged files are recognised by their stat data and not read again.

Paths matching a .casignore file (gitignore syntax, in any directory) or an
--exclude pattern are left out; the .cas directory itself never goes in.
FIFOs, sockets and devices are reported and skipped.

With one PATH the digest is that file's or directory's; with several, it
is that of a directory holding them by their base names.

With a default remote (cas remote add), or --to NAME, everything the
remote lacks is uploaded afterwards, then the ref; --local skips that.
When the default remote cannot be reached, the push stores locally, says
so, and records the upload as pending: 'cas sync' (or the next push that
reaches the remote) uploads it.

Without --name nothing keeps what was pushed from 'cas gc' (unless a ref
names it already): push says so in a warning.`,
		Example: `  cas push data/ --name train
  cas push ckpt/epoch10.pt --json
  cas push data/ --exclude '*.tmp' --exclude 'cache/'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			opts.NameSet = cmd.Flags().Changed("name")
			return pushRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "set the ref `NAME` to the result (cas refs lists them)")
	cmd.Flags().StringArrayVarP(&opts.Excludes, "exclude", "e", nil, "leave out paths matching `PATTERN` (gitignore syntax; repeatable)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "print only the digest; no progress bar")
	cmd.Flags().StringVar(&opts.To, "to", "", "upload to the remote `NAME` (default: the default remote)")
	cmd.Flags().BoolVar(&opts.Local, "local", false, "store locally only; upload nothing")
	return cmd
}

// pushOutput is push's --json object; its keys are a documented format.
type pushOutput struct {
	*cas.PushResult
	Ref     string             `json:"ref,omitempty"`
	Seconds float64            `json:"seconds"`
	Upload  *cas.TransferStats `json:"upload,omitempty"`
	Remote  string             `json:"remote,omitempty"`
	// Pending names the default remote that could not be reached: the
	// upload is owed to it (cas sync).
	Pending string `json:"pending,omitempty"`
}

// named reports whether a ref of r points at d (a push without --name of
// what a ref keeps already, which gc spares). A ref that cannot be read
// counts as naming nothing.
func named(ctx context.Context, r *cas.Repo, d digest.Digest) bool {
	refs, _ := r.Refs(ctx)
	for _, ref := range refs {
		if ref.Target == d {
			return true
		}
	}
	return false
}

func pushRun(ctx context.Context, opts *pushOptions) error {
	if opts.NameSet && opts.Name == "" {
		return usageError("--name is empty: give a ref name, or leave --name out")
	}
	if opts.Name != "" && !cas.ValidRefName(opts.Name) {
		return usageError("--name %q: %v", opts.Name, cas.ErrBadRefName)
	}
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	if opts.Name != "" {
		// Before anything is read, not once it is stored unnamed.
		if err := r.RefNameFree(opts.Name); err != nil {
			return err
		}
	}
	// A bad remote fails before anything is read, not after; a default
	// one that cannot be reached leaves the push local, the upload owed.
	be, rc, err := opts.Factory.targetRemote(ctx, r, opts.To, opts.Local)
	offline, err := offlineDefault(r, opts.To, err)
	if err != nil {
		return err
	}
	bar := !opts.Quiet && !opts.JSON && opts.IO.ErrIsTerminal
	// A bar shows how far along the push is: its totals are counted first.
	prog := &cas.Progress{CountAhead: bar}
	warn := func(path string, err error) {
		if !opts.JSON {
			fmt.Fprintf(opts.IO.ErrOut, "warning: skipped %s: %v\n", path, err)
		}
	}
	if be != nil {
		// What earlier pushes owed this remote goes up first, so that a
		// ref this push sets is not then set back to an older target. It
		// does not stop this push: sync says what still failed.
		if _, _, err := uploadPending(ctx, opts.Factory, r, be, rc, opts.Quiet || opts.JSON); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: uploads owed to %s: %v (they stay owed: %s)\n", rc.Name, err, syncHints(r)(rc.Name))
		}
	}
	start := opts.Factory.Now()
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "pushing", prog)
	// With a remote, each pack goes up as soon as it is written; the rest
	// and the ref follow once the push is done, in the library's order.
	// CAS_NO_FLOAT_CODEC=1 stores tensor data as cas before the float
	// codec did: for make bench, which compares the two.
	res, err := r.Push(ctx, opts.Paths, cas.PushOptions{Excludes: opts.Excludes, Progress: prog, Warn: warn, Ref: opts.Name, Remote: be,
		NoFloatCodec: opts.Factory.Getenv("CAS_NO_FLOAT_CODEC") == "1"})
	stop()
	if err != nil {
		return err
	}
	elapsed := opts.Factory.Now().Sub(start)
	out := pushOutput{PushResult: res, Seconds: elapsed.Seconds(), Ref: opts.Name}
	if be != nil {
		out.Upload, out.Remote = res.Upload, rc.Name
	}
	if offline != nil {
		if err := notePending(ctx, opts.Factory, r, offline, opts.Name, res.Object(len(opts.Paths))); err != nil {
			return err
		}
		out.Pending = offline.Name
	}
	// The data and the ref are stored: a list for `cas status` that
	// cannot be written is not a failed push.
	if err := recordPushed(r, opts.Paths); err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "warning: record the pushed paths (cas status): %v\n", err)
	}
	switch {
	case opts.JSON:
		return writeJSON(opts.IO.Out, out)
	case opts.Quiet:
		fmt.Fprintln(opts.IO.Out, res.Digest)
		return nil
	}
	w := opts.IO.Out
	fmt.Fprintln(w, res.Digest)
	fmt.Fprintf(opts.IO.ErrOut, "%s, %s%s: %s new, %s added to the store", count(res.Files, "file"), bytesStr(res.Bytes), took(elapsed, res.Bytes), bytesStr(res.NewBytes), bytesStr(res.StoredBytes))
	if res.Unchanged > 0 {
		fmt.Fprintf(opts.IO.ErrOut, ", %s unchanged", count(res.Unchanged, "file"))
	}
	fmt.Fprintln(opts.IO.ErrOut)
	if len(res.Skipped) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "skipped %s (FIFOs, sockets, devices)\n", count(len(res.Skipped), "special file"))
	}
	if opts.Name != "" {
		fmt.Fprintf(opts.IO.ErrOut, "ref %s -> %s\n", opts.Name, res.Digest.Short())
	} else if !named(ctx, r, res.Digest) {
		fmt.Fprintln(opts.IO.ErrOut, "warning: no ref names what was pushed, so `cas gc` may delete it after its grace period: push with --name NAME to keep it")
	}
	if be != nil {
		reportUpload(opts.IO, false, rc, res.Upload) // after what was stored
	}
	return nil
}
