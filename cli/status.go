package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
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
		if _, err := os.Lstat(opts.Path); err != nil {
			return err // no such file: nothing to push either
		}
		return &userError{msg: opts.Path + " has not been pushed from this store", hint: "run `cas push " + opts.Path + "` first"}
	}
	// The path is compared with the stored tree as it is walked, one
	// directory at a time; what is found goes to a spool (memory, then a
	// temporary file), so that nothing is printed if the walk fails and,
	// with --json, the path's digest and whether anything changed, which
	// the walk finds, can come before the list.
	sp := newSpool()
	defer sp.close()
	p := &changePrinter{w: sp, asJSON: opts.JSON, json: &jsonList{w: sp, indent: "  "}}
	now, err := cas.DiffPath(ctx, r, last, r.StoreTrees(), opts.Path,
		cas.DiffPathOptions{Excludes: opts.Excludes, Digest: opts.JSON}, p.change)
	if err != nil {
		return err
	}
	if err := p.close(); err != nil {
		return err
	}
	out := bufio.NewWriter(opts.IO.Out)
	if opts.JSON {
		var head bytes.Buffer
		err = writeJSON(&head, struct {
			Path    string       `json:"path"`
			Pushed  string       `json:"pushed"`
			Current string       `json:"current"`
			Changed bool         `json:"changed"`
			Changes []cas.Change `json:"changes"`
		}{opts.Path, last.Digest.String(), now.Digest.String(), p.n > 0, []cas.Change{}})
		if err != nil {
			return err
		}
		// The list, spooled, is written where the empty one stands.
		if _, err := out.Write(bytes.TrimSuffix(head.Bytes(), []byte("[]\n}\n"))); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "last pushed as %s\n", last.Digest.Short())
	}
	if err := sp.copyTo(out); err != nil {
		return err
	}
	if opts.JSON {
		fmt.Fprint(out, "\n}\n")
	}
	return out.Flush()
}
