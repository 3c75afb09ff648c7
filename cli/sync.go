package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/remote"
)

// offlineDefault decides what a command that stores locally first (push,
// run) does when opening its remote failed with err: a default remote
// (to is "") that cannot be reached leaves the work local, and its
// settings come back so that the upload is recorded as pending; any
// other failure stays one.
func offlineDefault(r *cas.Repo, to string, err error) (*remote.Config, error) {
	if err == nil || to != "" || !errors.Is(err, remote.ErrUnreachable) {
		return nil, err
	}
	rc, ok, lerr := remote.LookupConfig(r.RemotesFile(), "")
	if lerr != nil || !ok {
		return nil, err
	}
	return &rc, nil
}

// notePending records the upload of obj (named ref) owed to the remote
// rc, which could not be reached, and says so in one line.
func notePending(ctx context.Context, f *Factory, r *cas.Repo, rc *remote.Config, ref string, obj cas.Object) error {
	// Recorded even when the command was interrupted: what it stored is
	// owed all the same.
	if err := r.RecordPending(context.WithoutCancel(ctx), rc.Name, ref, obj); err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "cas: remote %s cannot be reached: stored locally only; `cas sync` uploads it when %s answers\n", rc.Name, rc.Name)
	return nil
}

// syncHints returns what sends the uploads owed to the remote named name,
// the store's remotes read once: "run `cas sync`" for the default remote,
// "run `cas sync --to NAME`" for another, and for a name no remote has (a
// rename cut short) the two ways out of that.
func syncHints(r *cas.Repo) func(name string) string {
	cs, err := remote.LoadConfigs(r.RemotesFile())
	return func(name string) string {
		for _, c := range cs {
			if c.Name == name && c.Default {
				return "run `cas sync`"
			}
		}
		if err != nil || slices.ContainsFunc(cs, func(c remote.Config) bool { return c.Name == name }) {
			return "run `cas sync --to " + name + "`"
		}
		return "no remote has that name: `cas remote add " + name + " URL` to send them, `cas remote remove --force " + name + "` to give them up"
	}
}

type syncOptions struct {
	IO      *IOStreams
	Factory *Factory
	To      string
	JSON    bool
	Quiet   bool
}

func newCmdSync(f *Factory) *cobra.Command {
	opts := &syncOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Upload what was stored while the remote could not be reached",
		Long: `Upload to a remote what push and run stored locally while it could not be
reached, and set its refs there: the uploads they recorded as pending
(.cas/pending/). Each is removed once it is done; if the remote fails
again, those not done stay for the next sync.`,
		Example: "  cas sync\n  cas sync --to backup --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return syncRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "the remote `NAME` (default: the default remote)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was uploaded as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "no progress bar, no summary")
	return cmd
}

// syncedUpload is one entry of sync's --json "synced" list.
type syncedUpload struct {
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest"`
}

func syncRun(ctx context.Context, opts *syncOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	be, rc, err := opts.Factory.targetRemote(ctx, r, opts.To, false)
	if err != nil {
		return err
	}
	if be == nil {
		return &userError{msg: "no remote to sync with", hint: "add one with `cas remote add NAME s3://BUCKET`"}
	}
	synced, st, err := uploadPending(ctx, opts.Factory, r, be, rc, opts.Quiet || opts.JSON)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Remote string             `json:"remote"`
			Synced []syncedUpload     `json:"synced"`
			Upload *cas.TransferStats `json:"upload"`
		}{rc.Name, synced, st})
	}
	if !opts.Quiet {
		if len(synced) == 0 {
			fmt.Fprintf(opts.IO.Out, "nothing pending for %s\n", rc.Name)
		} else {
			fmt.Fprintf(opts.IO.Out, "synced %s to %s\n", count(len(synced), "pending upload"), rc.Name)
		}
	}
	return nil
}

// uploadPending publishes on be (the remote rc) every upload owed to it,
// oldest first, removing each entry once done, and returns them and what
// went up in all. One that fails is said and stays owed; the others go
// on, and the error at the end counts the failures.
func uploadPending(ctx context.Context, f *Factory, r *cas.Repo, be remote.Backend, rc *remote.Config, quiet bool) ([]syncedUpload, *cas.TransferStats, error) {
	ps, err := r.PendingUploads(rc.Name)
	if err != nil {
		return nil, nil, err
	}
	synced := []syncedUpload{}
	total := &cas.TransferStats{}
	failed := 0
	for _, p := range ps {
		prog := &cas.Progress{}
		stop := startProgress(f.IO, quiet, "uploading", prog)
		st, err := r.Publish(ctx, be, p.Ref, p.Object, prog)
		stop()
		if err != nil {
			if ctx.Err() != nil {
				return synced, total, err
			}
			// One that fails stays owed, and does not hold up the others.
			fmt.Fprintf(f.IO.ErrOut, "cas: warning: %s stays owed to %s: %v\n", p.Object.Digest.Short(), rc.Name, err)
			failed++
			continue
		}
		if err := r.ClearPending(p); err != nil {
			return synced, total, err
		}
		total.Objects += st.Objects
		total.Bytes += st.Bytes
		total.Skipped += st.Skipped
		total.Seconds += st.Seconds
		synced = append(synced, syncedUpload{Ref: p.Ref, Digest: p.Object.Digest.String()})
		if !quiet {
			reportUpload(f.IO, false, rc, st)
			if p.Ref != "" {
				fmt.Fprintf(f.IO.ErrOut, "ref %s -> %s on %s\n", p.Ref, p.Object.Digest.Short(), rc.Name)
			}
		}
	}
	if failed > 0 {
		return synced, total, fmt.Errorf("%s of %s failed, and stay owed (run `cas sync` again)", count(failed, "upload"), count(len(ps), "pending upload"))
	}
	return synced, total, nil
}
