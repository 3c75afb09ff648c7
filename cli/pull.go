package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
)

type pullOptions struct {
	IO      *IOStreams
	Factory *Factory
	Ref     string
	From    string
	JSON    bool
	Quiet   bool
}

func newCmdPull(f *Factory) *cobra.Command {
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
	be, rc, err := opts.Factory.openRemote(ctx, r, opts.From)
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
	obj, err := manifest.ResolveSpec(ctx, r, opts.Ref)
	if err != nil {
		return err
	}
	prog := &cas.Progress{}
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "pulling", prog)
	st, err := r.Pull(ctx, obj, prog)
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
	fmt.Fprintf(opts.IO.Out, "pulled %s from %s: %s, %s (%d already here)\n", obj.Digest.Short(), rc.Name, count(st.Objects, "object"), bytesStr(st.Bytes), st.Skipped)
	return nil
}
