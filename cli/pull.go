package cli

import (
	"context"
	"errors"
	"fmt"

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
a lying bucket) is set right from the data.`,
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
	ref, err := remoteRef(ctx, r, be, opts.Ref)
	if err != nil {
		return err
	}
	var obj *cas.Object
	if ref != nil {
		o := ref.Object()
		obj = &o
	} else if obj, err = manifest.ResolveSpec(ctx, r, opts.Ref); err != nil {
		return err
	}
	prog := &cas.Progress{}
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "pulling", prog)
	st, err := r.Pull(ctx, obj, prog)
	stop()
	var mismatch *cas.MismatchError
	switch {
	case err != nil && ref != nil:
		return fmt.Errorf("ref %s on %s: %w", ref.Name, rc.Name, err)
	case errors.As(err, &mismatch):
		return fmt.Errorf("%s: %w", opts.Ref, err)
	case err != nil:
		return err
	}
	name, err := setPulledRef(ctx, r, ref, *obj)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Digest string `json:"digest"`
			Remote string `json:"remote"`
			Ref    string `json:"ref,omitempty"`
			*cas.TransferStats
		}{obj.Digest.String(), rc.Name, name, st})
	}
	fmt.Fprintf(opts.IO.Out, "pulled %s from %s: %s, %s (%d already here)\n", obj.Digest.Short(), rc.Name, count(st.Objects, "object"), bytesStr(st.Bytes), st.Skipped)
	if name != "" {
		fmt.Fprintf(opts.IO.ErrOut, "ref %s -> %s\n", name, obj.Digest.Short())
	}
	return nil
}

// remoteRef finds the ref of the remote be that spec names, if it names
// one (runs/NAME too for a bare run name, as REFs read): the remote's, not
// a local ref of the same name, as git pull takes the remote's branch.
func remoteRef(ctx context.Context, r *cas.Repo, be remote.Backend, spec string) (*cas.Ref, error) {
	if !cas.ValidRefName(spec) {
		return nil, nil // a digest, a prefix, REF:path
	}
	for _, name := range []string{spec, manifest.RefPrefix + spec} {
		ref, err := r.GetRefOn(ctx, be, name)
		if errors.Is(err, cas.ErrNotFound) || errors.Is(err, cas.ErrBadRefName) {
			continue
		}
		return ref, err
	}
	return nil, nil
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
