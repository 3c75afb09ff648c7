package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
)

type hashOptions struct {
	IO       *IOStreams
	Factory  *Factory
	Paths    []string
	Excludes []string
	JSON     bool
}

func newCmdHash(f *Factory) *cobra.Command {
	opts := &hashOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "hash PATH...",
		Short: "Print the digest of files or directories without storing them",
		Long: `Print the cas digest of each PATH without storing anything. No store is
needed. For a file it is exactly what b3sum prints; for a directory it is
the digest of its canonical tree encoding (docs/FORMAT.md), the same on any
machine whatever the timestamps, owners or chunk settings. A file of 4 MiB
or more is hashed on every core, as b3sum does: BLAKE3 is a tree whose
parts hash apart and join into the same digest.`,
		Example: "  cas hash data/\n  cas hash model.pt --json",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			return hashRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Excludes, "exclude", "e", nil, "leave out paths matching `PATTERN` (gitignore syntax)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print results as JSON")
	return cmd
}

type hashOutput struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Kind   string `json:"kind"`
	Files  int64  `json:"files"`
	Bytes  int64  `json:"bytes"`
}

func hashRun(ctx context.Context, opts *hashOptions) error {
	// As push does; with --json too, whose output has no list of them.
	warn := func(path string, err error) {
		fmt.Fprintf(opts.IO.ErrOut, "warning: skipped %s: %v\n", path, err)
	}
	var outs []hashOutput
	for _, p := range opts.Paths {
		res, err := cas.Hash(ctx, nil, []string{p}, cas.PushOptions{Excludes: opts.Excludes, Warn: warn})
		if err != nil {
			return err
		}
		outs = append(outs, hashOutput{Path: p, Digest: res.Digest.String(), Kind: res.Kind.String(), Files: res.Files, Bytes: res.Size})
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, outs)
	}
	for _, o := range outs {
		fmt.Fprintf(opts.IO.Out, "%s  %s\n", o.Digest, o.Path)
	}
	return nil
}
