package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrNoConditionalWrites: the service stored a Put whose condition
// (IfNoneMatch or IfMatch) should have refused it. Concurrent writers of
// one key would overwrite each other there without noticing, so refs must
// not be shared through it.
var ErrNoConditionalWrites = errors.New("conditional writes are ignored")

// ProbePrefix is where ProbeConditional writes its probe objects,
// "probe/" and 24 hex digits. Nothing else uses it; a probe left behind
// (a killed process, a bucket that refuses deletes) is harmless.
const ProbePrefix = "probe/"

// ConditionalError is the verdict of a probe whose condition the service
// ignored. It wraps ErrNoConditionalWrites.
type ConditionalError struct {
	Location string // the backend, "s3://bucket/prefix"
	Header   string // the condition ignored: "If-None-Match" or "If-Match"
}

func (e *ConditionalError) Error() string {
	return fmt.Sprintf("%s ignores conditional writes (a put with %s that should have been refused was stored)", e.Location, e.Header)
}

func (e *ConditionalError) Unwrap() error { return ErrNoConditionalWrites }

// ProbeConditional checks that be enforces conditional Puts. It writes a
// new key under ProbePrefix, then checks that a second Put with
// IfNoneMatch fails with ErrExists and a Put with IfMatch of an ETag the
// object never had fails with ErrPrecondition, and deletes the key.
//
// It returns nil when both conditions hold, a *ConditionalError when the
// service stored a write it should have refused, and any other error when
// it could not tell: in particular an error wrapping ErrAccessDenied (or
// fs.ErrPermission for a local directory) when the credentials may not
// write, which says nothing of the service. On S3 it costs six requests
// when the service passes: two for the first Put (the upload and a check
// of the stored size), one for each refused Put and two for the Delete.
func ProbeConditional(ctx context.Context, be Backend) (err error) {
	key := ProbePrefix + newPutID()
	put := func(data string, opts PutOptions) error {
		return be.Put(ctx, key, bytes.NewReader([]byte(data)), int64(len(data)), opts)
	}
	if err := put("cas conditional-write probe 1\n", PutOptions{IfNoneMatch: true}); err != nil {
		return fmt.Errorf("probe conditional writes on %s: %w", be.Location(), err)
	}
	defer func() {
		// A probe left behind costs nothing; a failed delete says nothing
		// about conditional writes.
		_ = be.Delete(context.WithoutCancel(ctx), key)
	}()
	checks := []struct {
		header string
		opts   PutOptions
		want   error
	}{
		{"If-None-Match", PutOptions{IfNoneMatch: true}, ErrExists},
		{"If-Match", PutOptions{IfMatch: `"cas-probe-` + newPutID() + `"`}, ErrPrecondition},
	}
	for i, c := range checks {
		err := put(fmt.Sprintf("cas conditional-write probe %d\n", i+2), c.opts)
		switch {
		case err == nil:
			return &ConditionalError{Location: be.Location(), Header: c.header}
		case !errors.Is(err, c.want):
			return fmt.Errorf("probe conditional writes on %s (%s): %w", be.Location(), c.header, err)
		}
	}
	return nil
}

// Prober is implemented by the Backends WithProbe returns.
type Prober interface {
	// Probe runs ProbeConditional on the wrapped backend unless a verdict
	// is known already, and returns the verdict: nil, or a
	// *ConditionalError. Errors that are no verdict (network, cancelled,
	// denied) are returned and not kept: the next call probes again.
	Probe(ctx context.Context) error
}

// Probed is a Backend that trusts the conditional Puts of the Backend it
// wraps only after ProbeConditional has passed on it: the first Put with
// IfNoneMatch or IfMatch runs the probe, once for all the Probed's
// callers, and fails with the probe's error if the probe did not pass;
// later conditional Puts get the same verdict without asking again. Puts
// without conditions, reads, lists and deletes pass through unchecked.
//
// A probe refused for lack of permission fails the Put with that error
// (wrapping ErrAccessDenied), as the Put itself would most likely fail.
type Probed struct {
	Backend

	lock    chan struct{} // held while probing; a channel so waiting ends with ctx
	done    bool          // a verdict is known
	verdict error
}

// WithProbe wraps be in a Probed. When be is a Retainer, so is the
// result.
func WithProbe(be Backend) Backend {
	p := &Probed{Backend: be, lock: make(chan struct{}, 1)}
	if r, ok := be.(Retainer); ok {
		return &probedRetainer{Probed: p, Retainer: r}
	}
	return p
}

var (
	_ Prober   = (*Probed)(nil)
	_ Retainer = (*probedRetainer)(nil)
)

// probedRetainer is a Probed of a backend that can retain objects.
type probedRetainer struct {
	*Probed
	Retainer
}

// Probe runs the probe unless its verdict is known.
func (p *Probed) Probe(ctx context.Context) error {
	select {
	case p.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("probe conditional writes on %s: %w", p.Location(), ctx.Err())
	}
	defer func() { <-p.lock }()
	if p.done {
		return p.verdict
	}
	err := ProbeConditional(ctx, p.Backend)
	var ce *ConditionalError
	if err == nil || errors.As(err, &ce) {
		p.done, p.verdict = true, err
	}
	return err
}

// Put probes before the first conditional Put.
func (p *Probed) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if opts.IfNoneMatch || opts.IfMatch != "" {
		if err := p.Probe(ctx); err != nil {
			return err
		}
	}
	return p.Backend.Put(ctx, key, r, size, opts)
}
