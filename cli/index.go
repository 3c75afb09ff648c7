package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newCmdIndex(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "index",
		Short:   "Manage the local index (a rebuildable cache)",
		Example: "  cas index rebuild",
	}
	cmd.AddCommand(newCmdIndexRebuild(f))
	return cmd
}

type indexRebuildOptions struct {
	IO      *IOStreams
	Factory *Factory
	JSON    bool
}

func newCmdIndexRebuild(f *Factory) *cobra.Command {
	opts := &indexRebuildOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the local index from the store's index segments and packs",
		Long: `Forget the local index and rebuild it from the index segments in the store,
and from the trailers of packs no segment lists (left by an interrupted
push). The stat cache goes too: the next push reads every file again.`,
		Example: "  cas index rebuild\n  cas index rebuild --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return indexRebuildRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print counts as JSON")
	return cmd
}

func indexRebuildRun(ctx context.Context, opts *indexRebuildOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	segs, orphans, err := r.RebuildIndex(ctx)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, map[string]int{"segments": segs, "orphan_packs": orphans})
	}
	fmt.Fprintf(opts.IO.Out, "index rebuilt from %s and %s\n", count(segs, "segment"), count(orphans, "unindexed pack"))
	return nil
}
