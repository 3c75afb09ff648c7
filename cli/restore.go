package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
)

type restoreOptions struct {
	IO      *IOStreams
	Factory *Factory
	Ref     string
	Dest    string
	Force   bool
	JSON    bool
	Quiet   bool
	From    string
}

func newCmdRestore(f *Factory) *cobra.Command {
	opts := &restoreOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "restore REF[:path] DEST",
		Short: "Write stored files or directories back to disk, exactly",
		Long: `Write the stored tree or file named by REF to DEST: the same bytes, exec bits,
symlinks (as links) and empty directories.

Every chunk is checked against its digest before it is written and every
file against its digest before it is moved into place; a damaged store
makes restore fail rather than write wrong bytes. A directory is assembled
beside DEST and renamed into place at the end, so a failed restore leaves
nothing behind.

DEST must not exist or be an empty directory, unless --force, which writes
into it (replacing what is in the way, keeping other files). A single file
restored into an existing directory keeps its name.

Data the local store lacks is read from the default remote (or --from):
only the bytes needed, with ranged GETs, checked like local data.`,
		Example: `  cas restore train data-copy/
  cas restore blake3:3f2a9c1e:images/0001.png ./0001.png
  cas restore 3f2a9c1e out/ --force`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref, opts.Dest = args[0], args[1]
			return restoreRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "write into a DEST that is not empty")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was written as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "print nothing on success; no progress bar")
	cmd.Flags().StringVar(&opts.From, "from", "", "read missing data from the remote `NAME` (default: the default remote)")
	return cmd
}

func restoreRun(ctx context.Context, opts *restoreOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	if opts.From != "" {
		if err := useRemote(ctx, opts.Factory, r, opts.From); err != nil {
			return err
		}
	}
	var obj *cas.Object
	var res *cas.RestoreResult
	// What the local store lacks may be on the default remote: a failed
	// restore left nothing behind, so it may run again reading from it.
	err = readThrough(ctx, opts.Factory, r, func() (err error) {
		if obj, err = manifest.ResolveSpec(ctx, r, opts.Ref); err != nil {
			return err
		}
		prog := &cas.Progress{}
		stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "restoring", prog)
		res, err = r.Restore(ctx, obj, opts.Dest, cas.RestoreOptions{Force: opts.Force, Progress: prog})
		stop()
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case opts.JSON:
		return writeJSON(opts.IO.Out, struct {
			Digest string `json:"digest"`
			*cas.RestoreResult
		}{obj.Digest.String(), res})
	case opts.Quiet:
		return nil
	}
	links := ""
	if res.Links > 0 {
		links = count(res.Links, "symlink") + ", "
	}
	// obj.Size, as push and verify count: a symlink's target is bytes of
	// the tree too.
	fmt.Fprintf(opts.IO.Out, "restored %s to %s: %s, %s%s\n", obj.Digest.Short(), res.Path, count(res.Files, "file"), links, bytesStr(obj.Size))
	return nil
}
