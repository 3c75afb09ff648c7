package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
)

// IOStreams are where a command reads and writes.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// ErrIsTerminal says whether ErrOut is a terminal: progress bars are
	// drawn only then.
	ErrIsTerminal bool
	OutIsTerminal bool
}

// Factory hands commands their dependencies, lazily.
type Factory struct {
	IO *IOStreams
	// Clock is the one clock of a command: the store and the remotes it
	// opens tell time by it (nil: the wall clock).
	Clock   clock.Clock
	Getenv  func(string) string
	WorkDir func() (string, error)
	// Remote opens the remote name of the store r (its default remote
	// for ""), checked to answer. It returns no backend and no error when
	// name is "" and r has no remote. Nil means the S3 buckets of the
	// store's remotes.json; a test hands out in-memory backends instead.
	Remote func(ctx context.Context, r *cas.Repo, name string) (remote.Backend, *remote.Config, error)

	repo *cas.Repo
	// readThroughFailed: a read through to the default remote failed in
	// this command; it is not tried (nor warned about) again.
	readThroughFailed bool
}

// SystemFactory is the Factory of the real program.
func SystemFactory() *Factory {
	return &Factory{
		IO: &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
			ErrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
			OutIsTerminal: term.IsTerminal(int(os.Stdout.Fd()))},
		Clock:   clock.Real(),
		Getenv:  os.Getenv,
		WorkDir: os.Getwd,
	}
}

// Now is the time on the factory's clock.
func (f *Factory) Now() time.Time { return clock.OrReal(f.Clock).Now() }

// errNoRepo is what users see without a store.
var errNoRepo = &userError{msg: "no cas store here or in any parent directory", hint: "run `cas init` to create one, or set CAS_DIR"}

// StoreDir finds the .cas directory: $CAS_DIR, or the nearest .cas/ from
// the working directory up.
func (f *Factory) StoreDir() (string, error) {
	if d := f.Getenv("CAS_DIR"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := f.WorkDir()
	if err != nil {
		return "", err
	}
	d, err := cas.Find(wd)
	if errors.Is(err, cas.ErrNoRepo) {
		return "", errNoRepo
	}
	return d, err
}

// Repo opens the store once per command.
func (f *Factory) Repo(ctx context.Context) (*cas.Repo, error) {
	if f.repo != nil {
		return f.repo, nil
	}
	dir, err := f.StoreDir()
	if err != nil {
		return nil, err
	}
	r, err := cas.OpenWith(ctx, dir, cas.OpenOptions{Clock: f.Clock, Warn: func(err error) {
		fmt.Fprintf(f.IO.ErrOut, "cas: warning: %s\n", warningText(err))
	}})
	if errors.Is(err, cas.ErrNoRepo) {
		return nil, &userError{msg: "no cas store at " + dir, hint: "run `cas init` there, or fix CAS_DIR"}
	}
	if err != nil {
		return nil, err
	}
	f.repo = r
	return r, nil
}

// openRemote opens a remote of the store r through f.Remote, or from
// remotes.json when f has none.
func (f *Factory) openRemote(ctx context.Context, r *cas.Repo, name string) (remote.Backend, *remote.Config, error) {
	if f.Remote != nil {
		return f.Remote(ctx, r, name)
	}
	return openRemote(ctx, r, name)
}

// readRemote opens a remote of the store r for reading, unchecked: its
// first request checks it (readingRemote.use). A test's f.Remote opens
// it checked. It returns nil without error when name is "" and there is
// no remote.
func (f *Factory) readRemote(ctx context.Context, r *cas.Repo, name string) (*readingRemote, error) {
	if f.Remote != nil {
		be, rc, err := f.Remote(ctx, r, name)
		if err != nil || be == nil {
			return nil, err
		}
		return &readingRemote{be: be, rc: rc}, nil
	}
	s3, rc, err := dialRemote(ctx, r, name)
	if err != nil || s3 == nil {
		return nil, err
	}
	return &readingRemote{be: remote.WithProbe(s3), rc: rc, s3: s3}, nil
}

// Close releases what the factory opened.
func (f *Factory) Close() error {
	if f.repo != nil {
		err := f.repo.Close()
		f.repo = nil
		return err
	}
	return nil
}

// warnPartial shows the entries a listing had to leave out (refs or pins
// that cannot be read, each named) as warnings, and lets the listing go on.
// Any other error is returned as it is.
func warnPartial(ios *IOStreams, err error) error {
	var partial *cas.PartialError
	if !errors.As(err, &partial) {
		return err
	}
	for _, e := range partial.Errs {
		fmt.Fprintf(ios.ErrOut, "cas: warning: %v\n", e)
	}
	return nil
}
