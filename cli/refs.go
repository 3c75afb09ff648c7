package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/remote"
)

type refsOptions struct {
	IO      *IOStreams
	Factory *Factory
	JSON    bool
}

func newCmdRefs(f *Factory) *cobra.Command {
	opts := &refsOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:     "refs",
		Short:   "List named refs",
		Long:    "List the refs set by 'cas push --name': name, kind, size, digest and when it was set.",
		Example: "  cas refs\n  cas refs --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return refsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print refs as JSON")
	cmd.AddCommand(newCmdRefsRm(f))
	return cmd
}

type refsRmOptions struct {
	IO      *IOStreams
	Factory *Factory
	Names   []string
	Remote  string
	JSON    bool
}

func newCmdRefsRm(f *Factory) *cobra.Command {
	opts := &refsRmOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Delete refs, so that GC may collect what only they kept",
		Long: `Delete the named refs (runs too: runs/NAME) from the local store, or with
--remote NAME from that remote only. The data stays until cas gc finds that
nothing else (another ref, a pin, a run) keeps it.`,
		Example: "  cas refs rm scratch/try-3\n  cas refs rm runs/broken-run --remote origin",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			return refsRmRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Remote, "remote", "", "delete on the remote `NAME` instead of the local store")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was deleted as JSON")
	return cmd
}

func refsRmRun(ctx context.Context, opts *refsRmOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	var be remote.Backend
	if opts.Remote != "" {
		if be, _, err = opts.Factory.openRemote(ctx, r, opts.Remote); err != nil {
			return err
		}
	}
	for _, name := range opts.Names {
		if !cas.ValidRefName(name) {
			return usageError("%q: %v", name, cas.ErrBadRefName)
		}
	}
	for _, name := range opts.Names {
		if err := r.DeleteRef(ctx, be, name); err != nil {
			if errors.Is(err, cas.ErrNotFound) {
				return &userError{msg: "no ref named " + name, hint: "`cas refs` lists them"}
			}
			return err
		}
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, map[string]any{"deleted": opts.Names})
	}
	for _, name := range opts.Names {
		fmt.Fprintf(opts.IO.Out, "deleted ref %s\n", name)
	}
	return nil
}

func refsRun(ctx context.Context, opts *refsOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	refs, err := r.Refs(ctx)
	if err = warnPartial(opts.IO, err); err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, refs)
	}
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Name
	}
	w := columnWidth(names, 24)
	for _, ref := range refs {
		fmt.Fprintf(opts.IO.Out, "%s %-4s %10s  %s  %s\n", padRight(fitName(ref.Name, w), w), ref.Kind, bytesStr(ref.Size), ref.Target.Short(), ref.Time.Local().Format("2006-01-02 15:04"))
	}
	return nil
}
