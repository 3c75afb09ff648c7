package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
)

type statusOptions struct {
	IO       *IOStreams
	Factory  *Factory
	Path     string
	Excludes []string
	JSON     bool
}

func newCmdStatus(f *Factory) *cobra.Command {
	opts := &statusOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "status PATH",
		Short: "Show what changed in PATH since it was last pushed",
		Long: `Compare PATH with what the last 'cas push PATH' from this store stored, as
git status does: unchanged files are recognised by their stat data and not
read. .casignore files apply as they do to push; give the same --exclude
patterns as the push did (or put them in a .casignore so they stick).`,
		Example: "  cas status data/\n  cas status data/ --exclude '*.tmp'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			return statusRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Excludes, "exclude", "e", nil, "leave out paths matching `PATTERN`, as push does")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print changes as JSON")
	return cmd
}

func statusRun(ctx context.Context, opts *statusOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(opts.Path)
	if err != nil {
		return err
	}
	last, ok, err := r.LastPush(abs)
	if err != nil {
		return err
	}
	if !ok {
		return &userError{msg: opts.Path + " has not been pushed from this store", hint: "run `cas push " + opts.Path + "` first"}
	}
	h, err := cas.Hash(ctx, r, []string{opts.Path}, cas.PushOptions{Excludes: opts.Excludes})
	if err != nil {
		return err
	}
	now := &cas.Object{Digest: h.Digest, Kind: h.Kind, Size: h.Size}
	// Changes are printed as they are found: none is held.
	out := bufio.NewWriter(opts.IO.Out)
	p := &changePrinter{w: out, asJSON: opts.JSON, json: &jsonList{w: out, indent: "  "}}
	if opts.JSON {
		// "changed" comes before the list: whether there is a first
		// change is found first.
		changed, err := anyChange(ctx, last, r.StoreTrees(), now, h.Trees())
		if err != nil {
			return err
		}
		var head bytes.Buffer
		err = writeJSON(&head, struct {
			Path    string       `json:"path"`
			Pushed  string       `json:"pushed"`
			Current string       `json:"current"`
			Changed bool         `json:"changed"`
			Changes []cas.Change `json:"changes"`
		}{opts.Path, last.Digest.String(), h.Digest.String(), changed, []cas.Change{}})
		if err != nil {
			return err
		}
		// The list, last, is written where the empty one stands.
		if _, err := out.Write(bytes.TrimSuffix(head.Bytes(), []byte("[]\n}\n"))); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "last pushed as %s\n", last.Digest.Short())
	}
	if err := cas.DiffEach(ctx, last, r.StoreTrees(), now, h.Trees(), p.change); err != nil {
		out.Flush()
		return err
	}
	if err := p.close(); err != nil {
		return err
	}
	if opts.JSON {
		fmt.Fprint(out, "\n}\n")
	}
	return out.Flush()
}

// errFound stops a walk at what it looked for.
var errFound = errors.New("found")

// anyChange reports whether a and b differ by at least one change.
func anyChange(ctx context.Context, a *cas.Object, as cas.TreeSource, b *cas.Object, bs cas.TreeSource) (bool, error) {
	err := cas.DiffEach(ctx, a, as, b, bs, func(cas.Change) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}
