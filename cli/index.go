package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCmdIndex(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "index",
		Short:   "Manage the local index (a rebuildable cache)",
		Example: "  cas index rebuild",
	}
	var asJSON bool
	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the local index from the store's index segments and packs",
		Long: `Forget the local index and rebuild it from the index segments in the store,
and from the trailers of packs no segment lists (left by an interrupted
push). The stat cache goes too: the next push reads every file again.`,
		Example: "  cas index rebuild\n  cas index rebuild --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.Repo(cmd.Context())
			if err != nil {
				return err
			}
			segs, orphans, err := r.RebuildIndex(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(f.IO.Out, map[string]int{"segments": segs, "orphan_packs": orphans})
			}
			fmt.Fprintf(f.IO.Out, "index rebuilt from %d segments and %d unindexed packs\n", segs, orphans)
			return nil
		},
	}
	rebuild.Flags().BoolVar(&asJSON, "json", false, "print counts as JSON")
	cmd.AddCommand(rebuild)
	return cmd
}
