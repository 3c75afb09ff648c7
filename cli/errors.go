package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/remote"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1 // the command failed
	exitUsage   = 2 // bad flags or arguments
	exitDamaged = 3 // verify found damaged data; a report FAILs on bytes, RNG states or a signature
	exitLinted  = 4 // inspect --lint found warnings (an error is 1)
	exitCancel  = 130
)

// userError is an error with a one-line hint of what to do next.
type userError struct {
	msg  string
	hint string
	code int
	// cause, if set, is the error it says in other words, for errors.Is.
	cause error
}

func (e *userError) Error() string { return e.msg }

func (e *userError) Unwrap() error { return e.cause }

// usageError marks bad flags or arguments.
func usageError(format string, a ...any) error {
	return &userError{msg: fmt.Sprintf(format, a...), code: exitUsage}
}

// damagedError is returned by commands that found damaged data; the
// report has been printed already.
var errDamaged = &userError{msg: "damaged data found", code: exitDamaged}

// printError writes one line of what went wrong and, where useful, one of
// what to do next, and returns the exit code.
func printError(w io.Writer, err error) int {
	var es exitStatus
	if errors.As(err, &es) {
		return int(es) // the command's own status; it said what went wrong
	}
	code := exitError
	msg := err.Error()
	hint := ""
	var ue *userError
	var ce *cas.CorruptError
	var pe *os.PathError
	var nw *remote.NoWriteError
	var de *cas.DestError
	if m, h, c, ok := manifestError(err); ok {
		msg, hint, code = m, h, c
	}
	switch {
	case errors.As(err, &ue):
		if ue.code != 0 {
			code = ue.code
		}
		hint = ue.hint
	case errors.As(err, &nw):
		msg = nw.Error()
		hint = "these credentials may read the bucket but not write it: ask for write access, or work with --local (the local store has everything)"
	case errors.Is(err, context.Canceled):
		code, msg = exitCancel, "interrupted"
	case errors.As(err, &de) && errors.Is(de.Err, cas.ErrDestNotEmpty):
		hint = "restore --force writes into it: stored files replace what is in the way, other files stay"
	case errors.As(err, &de):
		hint = "restore --force replaces it"
	case errors.As(err, &ce):
		code = exitDamaged
		hint = "run `cas verify` to see everything that is damaged"
	case errors.Is(err, cas.ErrGCMissing):
		hint = "`cas verify` says which; `cas pull REF` brings data from a remote"
	case errors.Is(err, cas.ErrAmbiguous):
		code = exitUsage
	case errors.Is(err, digest.ErrSyntax):
		code = exitUsage
		hint = "a digest is blake3: and 64 hex characters; a prefix needs at least 8 of them"
	case errors.Is(err, cas.ErrBadRefName), errors.Is(err, cas.ErrRefClash):
		code = exitUsage
	case errors.Is(err, cas.ErrIndexDamaged):
		hint = "the local index is only a cache of the store: `cas index rebuild` mends it"
	case errors.As(err, new(*remote.NoRemoteError)):
		hint = "`cas remote list` shows them"
	case errors.Is(err, cas.ErrNoPath):
		hint = "`cas ls REF` lists what a stored directory holds"
	case errors.Is(err, cas.ErrDataNotFound):
		hint = "`cas verify` lists what the store lacks; `cas pull REF` brings it from a remote"
	case errors.Is(err, cas.ErrNotFound):
		hint = "`cas refs` lists names; a digest prefix needs at least 8 hex characters"
	case errors.As(err, &pe) && errors.Is(err, os.ErrNotExist):
		msg = "no such file or directory: " + pe.Path
	}
	fmt.Fprintln(w, "cas: "+msg)
	if hint != "" {
		fmt.Fprintln(w, "hint: "+hint)
	}
	return code
}

// warningText is a warning of the store on one line, with what to run
// next where that helps.
func warningText(err error) string {
	if errors.As(err, new(*cas.OrphanPackError)) {
		return err.Error() + "; `cas verify` reports it"
	}
	return err.Error()
}

// optionFlags names the flag that sets each manifest.Options field.
var optionFlags = map[string]string{"Inputs": "--input", "Config": "--config", "Dir": "--workdir", "Repo": "--repo"}

// manifestError renders the manifest errors that name something the user
// gave or can do, in terms of flags and commands: the library names its
// Options fields, never flags.
func manifestError(err error) (msg, hint string, code int, ok bool) {
	var oe *manifest.OptionError
	var ee *manifest.ExistsError
	var oi *manifest.OutsideInputError
	var mc *manifest.MissingCommitError
	var na *manifest.NoArtifactError
	switch {
	case errors.As(err, &oe):
		e := *oe
		e.Option = cmp.Or(optionFlags[oe.Option], oe.Option)
		return e.Error(), "", exitError, true
	case errors.As(err, &ee):
		return ee.Error(), "give --workdir a new directory", exitError, true
	case errors.As(err, &oi):
		return oi.Error(), fmt.Sprintf("restore it there (cas restore %s %s) and give the command after --, or record the run with the input inside its directory", oi.Digest.Short(), oi.Path), exitError, true
	case errors.As(err, &mc):
		return mc.Error(), "fetch it, or give --repo", exitError, true
	case errors.As(err, &na):
		return err.Error(), "`cas show " + na.Run + "` lists them", exitError, true
	}
	return "", "", 0, false
}
