package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/remote"
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
arrival, and what a ref says of its target (a directory or a file, and
its size) against the data: a remote ref that says otherwise is refused.
(restore alone also works without a local copy: it reads just the
bytes it needs from the remote.)

When REF is the name of a ref on the remote (runs/NAME for a run), the
local store gets a ref of that name too, as a git pull makes a local
branch; an existing local ref of that name is moved, keeping its earlier
target in its history (cas refs log NAME). A local ref with the right
target but a wrong kind or size (as a cas before 2026-12 could take from
a lying bucket) is set right from the data.

When REF is the name of a pin on the remote (and of no ref there), or
pins/NAME, the local store gets that pin too, with the remote pin's
message, time and signature: it keeps the pulled data from garbage
collection here and verifies without the remote (cas verify NAME --key).
A pin never moves: a local pin of the name to another target refuses the
pull, and so does a signed pin whose fields differ from its statement.`,
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
	// The order REFs resolve in: a ref of the name, a pin of it, a run.
	ref, err := remoteRef(ctx, r, be, opts.Ref, false)
	if err != nil {
		return err
	}
	var pin *cas.Pin
	if ref == nil {
		if pin, err = remotePin(ctx, r, be, opts.Ref); err != nil {
			return err
		}
	}
	if ref == nil && pin == nil {
		if ref, err = remoteRef(ctx, r, be, opts.Ref, true); err != nil {
			return err
		}
	}
	var obj *cas.Object
	switch {
	case ref != nil:
		o := ref.Object()
		obj = &o
	case pin != nil:
		o := pin.Object()
		obj = &o
	default:
		if obj, err = manifest.ResolveSpec(ctx, r, opts.Ref); err != nil {
			return err
		}
	}
	prog := &cas.Progress{}
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "pulling", prog)
	st, err := r.Pull(ctx, obj, prog)
	stop()
	var mismatch *cas.MismatchError
	switch {
	case err != nil && ref != nil:
		return fmt.Errorf("ref %s on %s: %w", ref.Name, rc.Name, err)
	case err != nil && pin != nil:
		return fmt.Errorf("pin %s on %s: %w", pin.Name, rc.Name, err)
	case errors.As(err, &mismatch):
		return fmt.Errorf("%s: %w", opts.Ref, err)
	case err != nil:
		return err
	}
	name, err := setPulledRef(ctx, r, ref, *obj)
	if err != nil {
		return err
	}
	pinned, err := setPulledPin(ctx, r, pin, *obj)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Digest string `json:"digest"`
			Remote string `json:"remote"`
			Ref    string `json:"ref,omitempty"`
			Pin    string `json:"pin,omitempty"`
			*cas.TransferStats
		}{obj.Digest.String(), rc.Name, name, pinned, st})
	}
	fmt.Fprintf(opts.IO.Out, "pulled %s from %s: %s, %s (%d already here)\n", obj.Digest.Short(), rc.Name, count(st.Objects, "object"), bytesStr(st.Bytes), st.Skipped)
	if name != "" {
		fmt.Fprintf(opts.IO.ErrOut, "ref %s -> %s\n", name, obj.Digest.Short())
	}
	if pinned != "" {
		fmt.Fprintf(opts.IO.ErrOut, "pin %s -> %s\n", pinned, obj.Digest.Short())
	}
	return nil
}

// remotePin finds the pin of the remote be that spec names ("pins/NAME",
// or NAME where no ref has it), if it names one, and checks it before
// anything is pulled: a signed pin must show what its statement signed
// (exit 3 otherwise; who signed it is for verify --key), and a local pin
// of the name must have the same target, since a pin never moves.
func remotePin(ctx context.Context, r *cas.Repo, be remote.Backend, spec string) (*cas.Pin, error) {
	name, full := strings.CutPrefix(spec, cas.PinPrefix)
	if !cas.ValidRefName(name) {
		return nil, nil
	}
	p, err := r.GetPin(ctx, be, name)
	switch {
	case errors.Is(err, cas.ErrNotFound) && !full:
		return nil, nil
	case err != nil:
		return nil, err
	}
	if _, err := checkPin(p, ""); err != nil {
		return nil, err
	}
	if local, err := r.GetPin(ctx, nil, name); err == nil && local.Target != p.Target {
		return nil, pinError(&cas.PinConflictError{Name: name, Pinned: local.Target, Want: p.Target}, "the local store")
	}
	return p, nil
}

// setPulledPin keeps in the local store a copy of the remote pin p, now
// that its closure obj (as Pull found it) is here: a GC root here, with
// the remote pin's message, time and signature. It returns the pin's name,
// or "" when the local store had it already.
func setPulledPin(ctx context.Context, r *cas.Repo, p *cas.Pin, obj cas.Object) (string, error) {
	if p == nil {
		return "", nil
	}
	local, err := r.Pin(ctx, nil, p.Name, obj, cas.PinOptions{Message: p.Message, Envelope: p.Envelope, Time: p.Time})
	if err != nil {
		return "", pinError(err, "the local store")
	}
	if local.Existing {
		return "", nil
	}
	return p.Name, nil
}

// remoteRef finds the ref of the remote be that spec names, if it names
// one (with run, the run runs/NAME of a bare run name, as REFs read): the
// remote's, not a local ref of the same name, as git pull takes the
// remote's branch.
func remoteRef(ctx context.Context, r *cas.Repo, be remote.Backend, spec string, run bool) (*cas.Ref, error) {
	if !cas.ValidRefName(spec) {
		return nil, nil // a digest, a prefix, REF:path
	}
	name := spec
	if run {
		name = manifest.RefPrefix + spec
	}
	ref, err := r.GetRefOn(ctx, be, name)
	if errors.Is(err, cas.ErrNotFound) || errors.Is(err, cas.ErrBadRefName) {
		return nil, nil
	}
	return ref, err
}

// setPulledRef points the local ref of the remote ref's name at obj, what
// the remote ref names as Pull found it (its kind and size checked against
// the data, not taken on the bucket's word), now that its data is here,
// and returns the name ("" when the local ref was so already). A local
// ref to the same target that says otherwise of it (one an older cas set
// on a remote ref's word) is set right.
func setPulledRef(ctx context.Context, r *cas.Repo, ref *cas.Ref, obj cas.Object) (string, error) {
	if ref == nil {
		return "", nil
	}
	if local, err := r.GetRefOn(ctx, nil, ref.Name); err == nil && local.Object() == obj {
		return "", nil
	}
	if _, err := r.SetRef(ctx, ref.Name, obj); err != nil {
		return "", err
	}
	return ref.Name, nil
}
