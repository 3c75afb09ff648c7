package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
)

type catOptions struct {
	IO      *IOStreams
	Factory *Factory
	Ref     string
}

func newCmdCat(f *Factory) *cobra.Command {
	opts := &catOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "cat REF[:path]",
		Short: "Write a stored file to standard output",
		Long: `Write the bytes of a stored file to standard output, checking every chunk
and the whole file's digest. If the file is damaged, cat stops with an
error before writing a byte of it (a file of more than 64 MiB is checked
through a temporary file first).`,
		Example: "  cas cat train:labels.csv | head\n  cas cat blake3:3f2a9c1e > model.pt",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return catRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func catRun(ctx context.Context, opts *catOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	return readThrough(ctx, opts.Factory, r, func() error {
		obj, err := manifest.ResolveSpec(ctx, r, opts.Ref)
		if err != nil {
			return err
		}
		if obj.Kind == cas.KindDir {
			return &userError{msg: opts.Ref + " is a directory", hint: "use `cas ls " + opts.Ref + "` to list it, or name a file with REF:path"}
		}
		// Nothing is written unless the whole file checks out, so a
		// second try reading from a remote never repeats output.
		if err := r.WriteFile(ctx, obj, opts.IO.Out); err != nil {
			return fmt.Errorf("%s: %w", opts.Ref, err)
		}
		return nil
	})
}
