package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
)

type lsOptions struct {
	IO        *IOStreams
	Factory   *Factory
	Ref       string
	Recursive bool
	JSON      bool
}

func newCmdLs(f *Factory) *cobra.Command {
	opts := &lsOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "ls REF[:path]",
		Short: "List a stored directory",
		Long: `List the entries of a stored directory: kind, size, digest and name.
Names are printed with Go quoting when they hold spaces, newlines or bytes
that are not UTF-8; --json gives them exactly.`,
		Example: "  cas ls train\n  cas ls train:images -r --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return lsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Recursive, "recursive", "r", false, "list subdirectories too")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print entries as JSON")
	return cmd
}

type lsEntry struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
}

func lsRun(ctx context.Context, opts *lsOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	// Entries are printed as the walk finds them, into a spool: nothing
	// reaches the output before the walk is over (readThrough may walk
	// again, reading a remote), and nothing of a long listing stays in
	// memory.
	sp := newSpool()
	defer sp.close()
	err = readThrough(ctx, opts.Factory, r, func() error {
		sp.reset()
		obj, err := manifest.ResolveSpec(ctx, r, opts.Ref)
		if err != nil {
			return err
		}
		p := &lsPrinter{w: sp, json: &jsonList{w: sp}, asJSON: opts.JSON}
		if obj.Kind != cas.KindDir {
			err = p.entry(obj.Name, obj.Kind, obj.Size, obj.Digest)
		} else {
			err = lsWalk(ctx, r, obj, "", opts.Recursive, p.entry)
		}
		if err != nil {
			return err
		}
		return p.close()
	})
	if err != nil {
		return err
	}
	return sp.copyTo(opts.IO.Out)
}

// lsPrinter prints entries one by one: a line each, or a JSON list.
type lsPrinter struct {
	w      io.Writer
	json   *jsonList
	asJSON bool
}

func (p *lsPrinter) entry(path string, kind cas.Kind, size int64, d digest.Digest) error {
	if p.asJSON {
		return p.json.add(lsEntry{Path: path, Kind: kind.String(), Size: size, Digest: d.String()})
	}
	_, err := fmt.Fprintf(p.w, "%-4s %10s  %s  %s\n", kind.String(), bytesStr(size), d.Short(), displayName(path))
	return err
}

func (p *lsPrinter) close() error {
	if !p.asJSON {
		return nil
	}
	if err := p.json.close(); err != nil {
		return err
	}
	_, err := io.WriteString(p.w, "\n")
	return err
}

func lsWalk(ctx context.Context, r *cas.Repo, obj *cas.Object, prefix string, recursive bool, fn func(path string, kind cas.Kind, size int64, d digest.Digest) error) error {
	t, err := r.ReadTree(ctx, obj.Digest)
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		p := prefix + e.Name
		if e.Kind == cas.KindDir {
			p += "/"
		}
		if err := fn(p, e.Kind, e.Size, e.Digest); err != nil {
			return err
		}
		if recursive && e.Kind == cas.KindDir {
			if err := lsWalk(ctx, r, &cas.Object{Digest: e.Digest, Kind: e.Kind}, p, true, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// displayName Go-quotes names that would not print plainly: with spaces
// or quotes, bytes that are not UTF-8, or any character that is not
// printable, which takes in C0 and C1 controls and the bidi overrides and
// isolates (U+202A–U+202E, U+2066–U+2069) that would reorder the line
// on a terminal. Quoting writes those as \u escapes.
func displayName(s string) string {
	for _, c := range s {
		if c == ' ' || c == '"' || c == utf8.RuneError || !unicode.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}

// displayText is displayName for free text (a pin's message): spaces and
// quotes print as they are; anything that would not print plainly is
// escaped.
func displayText(s string) string {
	for _, c := range s {
		if c == utf8.RuneError || !unicode.IsPrint(c) {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
