package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
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
remote lacks is uploaded afterwards, then the ref; --local skips that.`,
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
	// A bad remote fails before anything is read, not after.
	be, rc, err := opts.Factory.targetRemote(ctx, r, opts.To, opts.Local)
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
	out := pushOutput{PushResult: res, Seconds: opts.Factory.Now().Sub(start).Seconds(), Ref: opts.Name}
	if be != nil {
		out.Upload, out.Remote = res.Upload, rc.Name
		reportUpload(opts.IO, opts.Quiet || opts.JSON, rc, res.Upload)
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
	rate := ""
	if out.Seconds > 0 {
		rate = fmt.Sprintf(" in %s (%s/s)", time.Duration(out.Seconds*float64(time.Second)).Round(time.Millisecond), bytesStr(int64(float64(res.Bytes-0)/out.Seconds)))
	}
	fmt.Fprintf(opts.IO.ErrOut, "%d files, %s%s: %s new, %s added to the store", res.Files, bytesStr(res.Bytes), rate, bytesStr(res.NewBytes), bytesStr(res.StoredBytes))
	if res.Unchanged > 0 {
		fmt.Fprintf(opts.IO.ErrOut, ", %d files unchanged", res.Unchanged)
	}
	fmt.Fprintln(opts.IO.ErrOut)
	if len(res.Skipped) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "skipped %d special files (FIFOs, sockets, devices)\n", len(res.Skipped))
	}
	if opts.Name != "" {
		fmt.Fprintf(opts.IO.ErrOut, "ref %s -> %s\n", opts.Name, res.Digest.Short())
	}
	return nil
}
