package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// pendingDir, in a store's directory, holds the uploads the store owes
// its remotes: what push and run stored while the default remote could
// not be reached. One JSON file each (a pendingUpload), so that two
// commands never edit the same file; `cas sync` uploads them and removes
// their files.
const pendingDir = "pending"

// pendingUpload is one upload owed to a remote: publish Object there and,
// if Ref is set, point the remote's ref at it.
type pendingUpload struct {
	Remote string     `json:"remote"`
	Ref    string     `json:"ref,omitempty"`
	Object cas.Object `json:"object"`
	Time   time.Time  `json:"time"`

	path string // its file
}

// check validates an entry read back from the store: it is data, and
// names a remote and a ref that commands will use.
func (p *pendingUpload) check() error {
	switch {
	case !cas.ValidRefName(p.Remote) || strings.Contains(p.Remote, "/"):
		return fmt.Errorf("remote %q: %w", p.Remote, cas.ErrBadRefName)
	case p.Ref != "" && !cas.ValidRefName(p.Ref):
		return fmt.Errorf("ref %q: %w", p.Ref, cas.ErrBadRefName)
	case p.Object.Digest.IsZero():
		return errors.New("no object")
	}
	return nil
}

// recordPending writes down that obj (named ref, if any) is owed to the
// remote rc. The same upload owed twice is one file.
func recordPending(r *cas.Repo, rc *remote.Config, ref string, obj cas.Object, now time.Time) error {
	dir := filepath.Join(r.Dir, pendingDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := pendingUpload{Remote: rc.Name, Ref: ref, Object: obj, Time: now.UTC().Truncate(time.Millisecond)}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	key := digest.Of([]byte(rc.Name + "\x00" + ref + "\x00" + obj.Digest.String()))
	name := filepath.Join(dir, key.Hex()[:32]+".json")
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// loadPending reads the uploads owed to the remote name ("" for every
// remote), oldest first. An entry that cannot be read is reported by
// warn and left where it is.
func loadPending(r *cas.Repo, name string, warn func(error)) ([]*pendingUpload, error) {
	dir := filepath.Join(r.Dir, pendingDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*pendingUpload
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		var p pendingUpload
		if err == nil {
			err = json.Unmarshal(b, &p)
		}
		if err == nil {
			err = p.check()
		}
		if err != nil {
			warn(fmt.Errorf("pending upload %s: %w", path, err))
			continue
		}
		p.path = path
		if name == "" || p.Remote == name {
			out = append(out, &p)
		}
	}
	slices.SortFunc(out, func(a, b *pendingUpload) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.path, b.path))
	})
	return out, nil
}

// renamePending moves the uploads owed to the remote old to new.
func renamePending(r *cas.Repo, old, new string) error {
	ps, err := loadPending(r, old, func(error) {})
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := recordPending(r, &remote.Config{Name: new}, p.Ref, p.Object, p.Time); err != nil {
			return err
		}
		if err := os.Remove(p.path); err != nil {
			return err
		}
	}
	return nil
}

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
func notePending(f *Factory, r *cas.Repo, rc *remote.Config, ref string, obj cas.Object) error {
	if err := recordPending(r, rc, ref, obj, f.Now()); err != nil {
		return fmt.Errorf("record the upload owed to %s: %w", rc.Name, err)
	}
	fmt.Fprintf(f.IO.ErrOut, "cas: remote %s cannot be reached: stored locally only; `cas sync` uploads it when %s answers\n", rc.Name, rc.Name)
	return nil
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
	ps, err := loadPending(r, rc.Name, func(err error) { fmt.Fprintf(f.IO.ErrOut, "cas: warning: %v\n", err) })
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
		if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
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
