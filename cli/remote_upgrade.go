package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
)

type remoteUpgradeOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	JSON    bool
	Quiet   bool
}

func newCmdRemoteUpgrade(f *Factory) *cobra.Command {
	opts := &remoteUpgradeOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "upgrade [NAME]",
		Short: "Give a bucket written by an older cas its lookup index",
		Long: `Build the lookup index of a remote (the default one unless NAME is given)
from its index segments. A bucket written by cas before the lookup index
existed works as it is, but each machine reading from it first downloads
every index segment the bucket holds: one request per push ever made.
Once upgraded, a restore asks only about the objects it needs, a few small
requests each, however long the bucket's history.

The upgrade reads every segment once and writes the lookup index beside
them; nothing already there is changed or deleted. It is safe to interrupt
and to run again, and other machines may push meanwhile (with this cas;
what an older cas pushes later is still found, more slowly). A bucket that
has a lookup index already is left as it is.`,
		Example: "  cas remote upgrade\n  cas remote upgrade origin --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Name = args[0]
			}
			return remoteUpgradeRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was done as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func remoteUpgradeRun(ctx context.Context, opts *remoteUpgradeOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	be, rc, err := opts.Factory.openRemote(ctx, r, opts.Name)
	if err != nil {
		return err
	}
	if be == nil {
		return &userError{msg: "no remote to upgrade", hint: "add one with `cas remote add NAME s3://BUCKET`"}
	}
	prog := &cas.Progress{}
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "upgrading", prog)
	st, err := r.UpgradeRemote(ctx, be, prog)
	stop()
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Remote string `json:"remote"`
			*cas.UpgradeStats
		}{rc.Name, st})
	}
	if st.Already {
		fmt.Fprintf(opts.IO.Out, "remote %s has a lookup index already: nothing to do\n", rc.Name)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "upgraded %s: %d index segments, %d entries, in %d lookup runs (%s) in %.1fs\n",
		rc.Name, st.Segments, st.Entries, st.Runs, bytesStr(st.Bytes), st.Seconds)
	return nil
}
