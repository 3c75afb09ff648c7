package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
)

type initOptions struct {
	IO       *IOStreams
	Factory  *Factory
	ChunkAvg string
	JSON     bool
}

func newCmdInit(f *Factory) *cobra.Command {
	opts := &initOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a store (.cas/) in the current directory",
		Long: `Create a store in ./.cas (or in $CAS_DIR). Every other command finds it by
walking up from the working directory, as git finds .git.

The chunk size is fixed for the life of the store. Digests never depend on
it: two stores with different chunk sizes give the same digests.`,
		Example: "  cas init\n  cas init --chunk-avg 256KiB",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return initRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ChunkAvg, "chunk-avg", "1MiB", "average chunk size, a power of two from 4KiB to 16MiB")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the store's settings as JSON")
	return cmd
}

func initRun(ctx context.Context, opts *initOptions) error {
	avg, err := humanize.ParseBytes(opts.ChunkAvg)
	if err != nil {
		return usageError("--chunk-avg %q: not a size", opts.ChunkAvg)
	}
	params, err := cas.NewChunkParams(int(avg))
	if err != nil {
		return usageError("--chunk-avg: %v", err)
	}
	f := opts.Factory
	dir := f.Getenv("CAS_DIR")
	if dir == "" {
		wd, err := f.WorkDir()
		if err != nil {
			return err
		}
		dir = filepath.Join(wd, cas.DirName)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := cas.Init(dir, params, f.Now()); err != nil {
		if errors.Is(err, cas.ErrRepoExists) {
			return &userError{msg: "a store already exists at " + dir}
		}
		return err
	}
	r, err := f.Repo(ctx)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, map[string]any{"path": dir, "config": r.Config})
	}
	fmt.Fprintf(opts.IO.Out, "Initialized cas store in %s (chunks %s average)\n", dir, bytesStr(int64(params.Avg)))
	return nil
}
