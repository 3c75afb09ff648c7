package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs cas with the process's arguments and returns the exit code.
func Main() int {
	// Keep the heap near the live data: pushes and restores stream through
	// bounded buffers, and the GC should not let garbage pile up beside them.
	debug.SetMemoryLimit(96 << 20)
	f := SystemFactory()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, f, os.Args[1:])
}

// Run runs one command line against a factory; tests call it directly.
func Run(ctx context.Context, f *Factory, args []string) int {
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	err := root.ExecuteContext(ctx)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return exitOK
	}
	if isFlagError(err) {
		return printError(f.IO.ErrOut, usageError("%s", err.Error()))
	}
	return printError(f.IO.ErrOut, err)
}

type flagError struct{ error }

func isFlagError(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "cas",
		Short: "Content-addressed artifact store for reproducible ML research",
		Long: `cas stores datasets and checkpoints by content, so that every result can be
traced to exact bytes and restored and verified anywhere.

Start with 'cas init' in your project, then 'cas push DATA --name train'.
Digests are BLAKE3 ('blake3:<hex>'); a file's digest is what b3sum prints.
Wherever a REF is asked for you can give a digest, a unique prefix of at
least 8 hex characters, or a ref name, optionally followed by ':path/inside'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &flagError{err} })
	root.AddGroup(&cobra.Group{ID: "store", Title: "Storing and restoring data:"},
		&cobra.Group{ID: "inspect", Title: "Looking at stored data:"},
		&cobra.Group{ID: "admin", Title: "Store maintenance:"})
	for _, c := range []*cobra.Command{
		newCmdInit(f, nil), newCmdPush(f, nil), newCmdRestore(f, nil), newCmdHash(f, nil),
	} {
		c.GroupID = "store"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newCmdLs(f, nil), newCmdCat(f, nil), newCmdDiff(f, nil), newCmdStatus(f, nil), newCmdRefs(f, nil),
	} {
		c.GroupID = "inspect"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newCmdVerify(f, nil), newCmdStats(f, nil), newCmdIndex(f),
	} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	return root
}
