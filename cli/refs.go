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
	Remote  string
	JSON    bool
}

func newCmdRefs(f *Factory) *cobra.Command {
	opts := &refsOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "refs",
		Short: "List named refs",
		Long: `List the refs set by 'cas push --name' (and runs, as runs/NAME): name,
kind, size, digest and when it was set. With --remote NAME, list the refs
on that remote instead, as git ls-remote does; any of them works by name
in ls, cat, show and restore, and 'cas pull NAME' makes it a local ref.`,
		Example: "  cas refs\n  cas refs --json\n  cas refs --remote origin\n  cas refs log train",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return refsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Remote, "remote", "", "list the refs on the remote `NAME`")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print refs as JSON")
	cmd.AddCommand(newCmdRefsRm(f), newCmdRefsLog(f))
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
	var be remote.Backend
	if opts.Remote != "" {
		if be, _, err = opts.Factory.openRemote(ctx, r, opts.Remote); err != nil {
			return err
		}
	}
	refs, err := r.RefsOn(ctx, be)
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

type refsLogOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	Remote  string
	JSON    bool
}

func newCmdRefsLog(f *Factory) *cobra.Command {
	opts := &refsLogOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "log NAME",
		Short: "Show what a ref points at and what it pointed at before",
		Long: `Show the target of ref NAME and its earlier targets, newest first (a ref
keeps its last 50), as git reflog does. Each earlier target is a digest
that works as a REF anywhere, and stays out of gc's reach while the ref
remembers it.`,
		Example: "  cas refs log train\n  cas refs log runs/baseline --json\n  cas refs log train --remote origin",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return refsLogRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Remote, "remote", "", "read the ref on the remote `NAME`")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the ref as JSON")
	return cmd
}

func refsLogRun(ctx context.Context, opts *refsLogOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	if !cas.ValidRefName(opts.Name) {
		return usageError("%q: %v", opts.Name, cas.ErrBadRefName)
	}
	var be remote.Backend
	if opts.Remote != "" {
		if be, _, err = opts.Factory.openRemote(ctx, r, opts.Remote); err != nil {
			return err
		}
	}
	ref, err := r.GetRefOn(ctx, be, opts.Name)
	if errors.Is(err, cas.ErrNotFound) {
		hint := "`cas refs` lists them"
		if opts.Remote != "" {
			hint = "`cas refs --remote " + opts.Remote + "` lists them"
		}
		return &userError{msg: "no ref named " + opts.Name, hint: hint}
	}
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, ref)
	}
	w := opts.IO.Out
	fmt.Fprintf(w, "%s  %s %s, set %s\n", ref.Target, ref.Kind, bytesStr(ref.Size), ref.Time.Local().Format("2006-01-02 15:04"))
	for _, d := range ref.Previous {
		fmt.Fprintf(w, "%s  earlier\n", d)
	}
	return nil
}
