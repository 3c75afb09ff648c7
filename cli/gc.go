package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
)

type gcOptions struct {
	IO      *IOStreams
	Factory *Factory
	Remote  string
	Grace   time.Duration
	DryRun  bool
	JSON    bool
}

func newCmdGC(f *Factory) *cobra.Command {
	opts := &gcOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "gc [--remote NAME] [--grace DURATION] [--dry-run]",
		Short: "Delete stored data that no ref, pin or run needs",
		Long: `Delete the packs that nothing keeps: no ref (nor the earlier targets a
ref remembers), no pin (with its whole closure), no run (with its inputs,
outputs, code patch, environment and logs).

GC works in two phases, one gc apart, so that a push running at the same
time on another machine never loses data it relied on:
  1. it writes down the unreferenced packs older than the grace period
     (a plan under gc/); nothing is deleted;
  2. a later gc, once the plan is older than the grace period, checks
     again what is referenced and deletes what still is not.
Run it daily (cron) and each run carries out the plan of the day before.
--grace 0 deletes at once, in one gc: only when nothing else writes to
the store. A push without --name is kept only while it is owed to a
remote that could not be reached (until 'cas sync' uploads it): name
what you keep.

With --remote NAME, collect on that remote, reading only the remote.`,
		Example: "  cas gc --dry-run\n  cas gc\n  cas gc --remote origin --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return gcRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Remote, "remote", "", "collect on the remote `NAME` instead of the local store")
	cmd.Flags().DurationVar(&opts.Grace, "grace", cas.DefaultGrace, "spare packs and plans younger than `DURATION`; 0 deletes at once")
	cmd.Flags().BoolVarP(&opts.DryRun, "dry-run", "n", false, "say what would be planned and freed; change nothing")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	return cmd
}

func gcRun(ctx context.Context, opts *gcOptions) error {
	if opts.Grace < 0 {
		return usageError("--grace %v: want a duration of 0 or more", opts.Grace)
	}
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	where := "the local store"
	var be = r.Backend
	if opts.Remote != "" {
		b, rc, err := opts.Factory.openRemote(ctx, r, opts.Remote)
		if err != nil {
			return err
		}
		be, where = b, "remote "+rc.Name
	}
	grace := opts.Grace
	if grace == 0 {
		grace = cas.NoGrace
	}
	rep, err := r.GC(ctx, be, cas.GCOptions{Grace: grace, DryRun: opts.DryRun})
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, rep)
	}
	w := opts.IO.Out
	would := ""
	if rep.DryRun {
		would = "would be "
	}
	fmt.Fprintf(w, "%s: %s, %d live (%s) from %s\n", where, count(rep.Packs, "pack"), rep.LivePacks, bytesStr(rep.LiveBytes), count(rep.Roots, "root"))
	if rep.PendingUploads > 0 {
		fmt.Fprintf(w, "kept for %s (owed to a remote until `cas sync`)\n", count(rep.PendingUploads, "pending upload"))
	}
	if rep.Freed.Packs > 0 || rep.Spared > 0 {
		fmt.Fprintf(w, "%sfreed: %s, %s", would, count(rep.Freed.Packs, "pack"), bytesStr(rep.Freed.Bytes))
		if rep.Spared > 0 {
			fmt.Fprintf(w, " (%s needed again and %s)", count(rep.Spared, "condemned pack"), map[bool]string{true: "stays", false: "stay"}[rep.Spared == 1])
		}
		fmt.Fprintln(w)
	}
	if rep.Retained > 0 {
		fmt.Fprintf(w, "kept under retention: %s\n", count(rep.Retained, "pack"))
	}
	if rep.Planned.Packs > 0 {
		fmt.Fprintf(w, "%splanned: %s, %s", would, count(rep.Planned.Packs, "unreferenced pack"), bytesStr(rep.Planned.Bytes))
		if rep.SweepAfter != nil {
			fmt.Fprintf(w, ", deleted by the first gc after %s", rep.SweepAfter.Local().Format("2006-01-02 15:04"))
		}
		fmt.Fprintln(w)
	}
	if rep.Pending.Packs > 0 {
		fmt.Fprintf(w, "pending: %s, %s, planned by an earlier gc and not due yet\n", count(rep.Pending.Packs, "pack"), bytesStr(rep.Pending.Bytes))
	}
	if rep.Young > 0 {
		fmt.Fprintf(w, "younger than the grace period: %s, %s\n", count(rep.Young, "unreferenced pack"), bytesStr(rep.YoungBytes))
	}
	if rep.Freed.Packs == 0 && rep.Planned.Packs == 0 && rep.Pending.Packs == 0 && rep.Young == 0 {
		fmt.Fprintln(w, "nothing to collect")
	}
	return nil
}
