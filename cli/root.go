package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/buildinfo"
	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/remote"
)

// Main runs cas with the process's arguments and returns the exit code.
func Main() int { return MainWith(SystemFactory()) }

// MainWith is Main with the factory f: the test binary's cas command
// passes one with its own clock.
func MainWith(f *Factory) int {
	// Keep the heap near the live data: pushes and restores stream through
	// bounded buffers, and the GC should not let garbage pile up beside them.
	debug.SetMemoryLimit(96 << 20)
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
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		err = explain(ctx, f, err) // before Close: it may look at the store
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = explain(ctx, f, cerr) // a failed close (a full disk) too
	}
	if err == nil {
		return exitOK
	}
	if isFlagError(err) {
		ue := &userError{msg: err.Error(), code: exitUsage}
		if cmd != nil {
			ue.hint = "see `" + cmd.CommandPath() + " --help`"
		}
		return printError(f.IO.ErrOut, ue)
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
least 8 hex characters, or a ref name (a pin's or a run's name alone works
where no ref has it), optionally followed by ':path/inside'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `cas version` does.
		Version: buildinfo.Version(),
	}
	root.SetVersionTemplate(versionLine() + "\n")
	var cpuProfile string
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to `FILE`")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	var traceOut string
	root.PersistentFlags().StringVar(&traceOut, "trace", "", "write an execution trace (go tool trace) to `FILE`")
	_ = root.PersistentFlags().MarkHidden("trace")
	var profFile, traceFile *os.File
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		var err error
		if traceOut != "" {
			if traceFile, err = os.Create(traceOut); err != nil {
				return err
			}
			if err = trace.Start(traceFile); err != nil {
				traceFile.Close()
				traceFile = nil
				return err
			}
		}
		if cpuProfile == "" {
			return nil
		}
		if profFile, err = os.Create(cpuProfile); err != nil {
			return err
		}
		if err = pprof.StartCPUProfile(profFile); err != nil {
			profFile.Close()
			profFile = nil
		}
		return err
	}
	var memProfile string
	root.PersistentFlags().StringVar(&memProfile, "memprofile", "", "write an allocation profile to `FILE`")
	_ = root.PersistentFlags().MarkHidden("memprofile")
	root.PersistentPostRun = func(cmd *cobra.Command, args []string) {
		if memProfile != "" {
			if mf, err := os.Create(memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(mf, 0)
				mf.Close()
			}
		}
		if profFile != nil {
			pprof.StopCPUProfile()
			profFile.Close()
		}
		if traceFile != nil {
			trace.Stop()
			traceFile.Close()
		}
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &flagError{flagErrorInWords(err)} })
	root.AddGroup(&cobra.Group{ID: "store", Title: "Storing and restoring data:"},
		&cobra.Group{ID: "inspect", Title: "Looking at stored data:"},
		&cobra.Group{ID: "runs", Title: "Recording experiments:"},
		&cobra.Group{ID: "publish", Title: "Publishing results:"},
		&cobra.Group{ID: "admin", Title: "Store maintenance:"})
	for _, c := range []*cobra.Command{
		newCmdInit(f), newCmdPush(f), newCmdRestore(f), newCmdHash(f), newCmdPull(f), newCmdRemote(f), newCmdSync(f),
	} {
		c.GroupID = "store"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newCmdLs(f), newCmdCat(f), newCmdDiff(f), newCmdStatus(f), newCmdRefs(f), newCmdInspect(f),
	} {
		c.GroupID = "inspect"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newCmdRun(f), newCmdRecord(f), newCmdShow(f), newCmdLog(f), newCmdEnv(f), newCmdReproduce(f),
	} {
		c.GroupID = "runs"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newCmdPin(f), newCmdPins(f), newCmdUnpin(f), newCmdKeygen(f), newCmdReport(f),
	} {
		c.GroupID = "publish"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newCmdVerify(f), newCmdStats(f), newCmdGC(f), newCmdIndex(f), newCmdVersion(f),
	} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	setupCompletion(root, f)
	argsAreUsage(root)
	return root
}

// argsAreUsage makes wrong arguments (too many, too few, an unknown
// subcommand) a usage error with exit status 2, as bad flags are. A
// command that only groups others shows its help when run bare.
func argsAreUsage(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
		c.Args = unknownCommand
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ue *userError
			if err != nil && !errors.As(err, &ue) {
				if err = argCountError(cmd, check, args); !errors.As(err, &ue) {
					err = &flagError{err}
				}
			}
			return err
		}
	}
	for _, sub := range c.Commands() {
		argsAreUsage(sub)
	}
}

// unknownCommand is the Args check of a command that only groups others.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := "`" + cmd.CommandPath() + " --help` lists the commands"
	if s := closestCommand(cmd, args[0]); s != "" {
		hint = "did you mean `" + cmd.CommandPath() + " " + s + "`?"
	}
	return &userError{msg: fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath()), hint: hint, code: exitUsage}
}

// explain turns errors whose own text would mislead or say too little
// into ones that say what happened and what to do, before printError
// picks the exit code. ctx is the command line's: it ends only on a
// signal, so only then is a cancelled command "interrupted" (exit 130).
func explain(ctx context.Context, f *Factory, err error) error {
	var ue *userError
	var ce *remote.ConditionalError
	switch {
	case errors.As(err, &ue):
		return err
	case errors.As(err, &ce):
		return &userError{msg: conditionalMessage(ce), hint: conditionalHint}
	case errors.Is(err, syscall.ENOSPC):
		// Before cancellation: a full disk that also stopped the other
		// steps of the command is a full disk.
		return &userError{msg: strings.ReplaceAll(err.Error(), "\n", "; "), // errors.Join's lines, on one
			hint: "the disk is full: free space and run the command again; nothing half-written was left"}
	case errors.Is(err, context.Canceled) && ctx.Err() == nil:
		// No signal came: a step failed and cancelled the others, and
		// its own error was lost on the way.
		return &userError{msg: "stopped before finishing, though not interrupted: a step failed and its error was lost",
			hint: "run the command again; if it stops the same way, check the free disk space and report it"}
	case errors.As(err, new(*cas.CorruptError)) && f.repo != nil && f.repo.HasRemote():
		// Data read through to a remote: the damage may be there.
		name := "NAME"
		if rc, ok, rerr := remote.LookupConfig(f.repo.RemotesFile(), ""); rerr == nil && ok {
			name = rc.Name
		}
		return &userError{msg: err.Error(), code: exitDamaged,
			hint: "some data came from the remote: `cas verify REF --from " + name + "` checks it there, `cas verify REF` the local store"}
	case errors.Is(err, remote.ErrNotFound) && !errors.Is(err, cas.ErrNotFound) && f.repo != nil:
		// An object the store needs (a pack, a tree) is missing, and
		// "object not found" alone reads as if a remote had been asked.
		if !remotesConfigured(f.repo) {
			return &userError{msg: fmt.Sprintf("%v (not in the local store, and no remote is configured to read it from)", err),
				hint: noRemoteHint}
		}
	case errors.Is(err, cas.ErrDataNotFound) && f.repo != nil && !remotesConfigured(f.repo):
		return &userError{msg: err.Error(), hint: noRemoteHint}
	}
	return err
}

// noRemoteHint is what to do about data missing from a store that has no
// remote to read it from.
const noRemoteHint = "`cas verify` lists what the store lacks; `cas remote add` a remote that holds it, or push the data again"

// remotesConfigured reports whether the store r has any remote.
func remotesConfigured(r *cas.Repo) bool {
	rs, err := remote.LoadConfigs(r.RemotesFile())
	return err != nil || len(rs) > 0 // an unreadable list may hold some
}
