package cli

import (
	"context"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
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
	var entries []lsEntry
	err = readThrough(ctx, opts.Factory, r, func() error {
		obj, err := manifest.ResolveSpec(ctx, r, opts.Ref)
		if err != nil {
			return err
		}
		entries = []lsEntry{}
		if obj.Kind != cas.KindDir {
			entries = append(entries, lsEntry{Path: obj.Name, Kind: obj.Kind.String(), Size: obj.Size, Digest: obj.Digest.String()})
			return nil
		}
		return lsWalk(ctx, r, obj, "", opts.Recursive, &entries)
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, entries)
	}
	for _, e := range entries {
		fmt.Fprintf(opts.IO.Out, "%-4s %10s  %s  %s\n", e.Kind, bytesStr(e.Size), e.Digest[len("blake3:"):len("blake3:")+12], displayName(e.Path))
	}
	return nil
}

func lsWalk(ctx context.Context, r *cas.Repo, obj *cas.Object, prefix string, recursive bool, out *[]lsEntry) error {
	t, err := r.ReadTree(ctx, obj.Digest)
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		p := prefix + e.Name
		if e.Kind == cas.KindDir {
			p += "/"
		}
		*out = append(*out, lsEntry{Path: p, Kind: e.Kind.String(), Size: e.Size, Digest: e.Digest.String()})
		if recursive && e.Kind == cas.KindDir {
			if err := lsWalk(ctx, r, &cas.Object{Digest: e.Digest, Kind: e.Kind}, p, true, out); err != nil {
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
