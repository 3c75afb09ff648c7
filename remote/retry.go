package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cas-ml/cas/clock"
)

// How the S3 backend retries.
//
// minio-go retries every request itself: MaxRetries attempts in all, on
// network errors, timeouts, 5xx statuses and throttling codes, sleeping a
// random time up to 200 ms × 2^attempt, at most 1 s, between attempts,
// and resending the body (every body the S3 backend hands it is seekable
// or buffered per part). That loop bounds each request; this file adds
// what it cannot do:
//
//   - counting the attempts of each operation (opStats), so that errors
//     say how often a request was tried, and so that Put knows when a
//     write's fate was unknown (the request broke after being sent);
//   - an idle timeout on connections, so that a server that stops
//     answering or reading mid-request is given up on (and retried);
//   - resuming a download whose body broke mid-way (s3Body), up to
//     MaxRetries requests in all, each with its own attempts;
//   - sending again an upload the server refused as corrupted
//     (S3.retryCorrupt), at most MaxRetries times in all.

// opStats counts the HTTP attempts of one operation.
type opStats struct {
	mu    sync.Mutex
	tries map[string]int // attempts per request (method and URL)
	// ambiguous: a PUT or POST failed after it may have reached the
	// server, so a retry may meet the effects of the first attempt.
	ambiguous atomic.Bool
}

type opStatsKey struct{}

// withStats returns a context that counts the attempts made with it.
func withStats(ctx context.Context) (context.Context, *opStats) {
	st := new(opStats)
	return context.WithValue(ctx, opStatsKey{}, st), st
}

// record counts an attempt of req that got resp or err.
func (st *opStats) record(req *http.Request, resp *http.Response, err error) {
	st.mu.Lock()
	if st.tries == nil {
		st.tries = make(map[string]int)
	}
	st.tries[req.Method+" "+req.URL.RequestURI()]++
	st.mu.Unlock()
	write := req.Method == http.MethodPut || req.Method == http.MethodPost
	if write && (err != nil && !dialError(err) || err == nil && resp.StatusCode >= 500) {
		st.ambiguous.Store(true)
	}
}

// maxTries returns the most attempts any one request took.
func (st *opStats) maxTries() int {
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, t := range st.tries {
		n = max(n, t)
	}
	return n
}

// countingTransport records every attempt in the opStats of its request's
// context.
type countingTransport struct {
	base  http.RoundTripper
	heard *heard
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.heard.silent() {
		// The endpoint took a connection and never answered within the
		// first-answer timeout: no more waiting on it, as on one that
		// refuses connections.
		err := &net.OpError{Op: "dial", Net: "tcp", Err: t.heard.noAnswer}
		if st, ok := req.Context().Value(opStatsKey{}).(*opStats); ok {
			st.record(req, nil, err)
		}
		return nil, err
	}
	var closed chan struct{}
	if req.Body != nil && req.Body != http.NoBody {
		// net/http may go on reading a failed request's body after
		// RoundTrip returns, until it closes it; minio-go retries by
		// seeking that same body (and its checksum state). Wait for the
		// close, so that no two attempts ever read the body at once.
		closed = make(chan struct{})
		r2 := *req
		r2.Body = &closeSignal{ReadCloser: req.Body, closed: closed}
		req = &r2
	}
	resp, err := t.base.RoundTrip(req)
	if closed != nil && (err != nil || resp.StatusCode >= 300) {
		// The wall clock: this is net/http's time, not the caller's.
		select {
		case <-closed:
		case <-req.Context().Done():
		case <-clock.Real().After(bodyCloseWait):
		}
	}
	if st, ok := req.Context().Value(opStatsKey{}).(*opStats); ok {
		st.record(req, resp, err)
	}
	return resp, err
}

// bodyCloseWait bounds how long a failed attempt waits for net/http to
// let go of its request body.
const bodyCloseWait = 30 * time.Second

// closeSignal closes closed when the transport closes the body.
type closeSignal struct {
	io.ReadCloser
	once   sync.Once
	closed chan struct{}
}

func (c *closeSignal) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// dialError reports whether err happened before a connection existed, so
// that the request never reached the server.
func dialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// newS3Transport returns minio-go's default transport with connections
// that time out when idle for timeout in the middle of a request (for
// first until the endpoint has answered at all), and with attempts
// counted.
func newS3Transport(secure bool, timeout, first time.Duration) (http.RoundTripper, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	h := &heard{quietFor: max(time.Minute, 6*first), noAnswer: fmt.Errorf("%w within %v: the endpoint takes connections and says nothing", errNoAnswer, first)}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ic := &idleConn{Conn: c, timeout: timeout, first: first, heard: h}
		ic.moved.Store(clock.Real().Now().UnixNano())
		return ic, nil
	}
	tr.ResponseHeaderTimeout = 0 // the idle timeout covers it
	tr.MaxIdleConnsPerHost = 64  // many requests in flight reuse their connections
	return countingTransport{base: tr, heard: h}, nil
}

// errNoAnswer is the error of an endpoint that takes connections and
// never answers (a stopped server, a black-holed network).
var errNoAnswer = errors.New("no answer")

// heard is what a transport knows of its endpoint: whether a byte has
// ever come back, and whether a connection went silent before one did.
type heard struct {
	answered atomic.Bool
	quietAt  atomic.Int64  // when a connection last went silent before any answer (Unix ns), 0 never
	quietFor time.Duration // how long requests fail at once after that
	noAnswer error         // errNoAnswer, with the timeout
}

// silent reports an endpoint that has never answered and let a
// connection sit silent past the first-answer timeout.
//
// It lasts quietFor (a minute, longer than a request's retries take to
// run out), not for good: then requests are tried again,
// so that a stall of a few seconds (a network switching, a first
// connection to a hung backend behind a balancer) does not disable a
// backend for the life of a process that outlives it.
func (h *heard) silent() bool {
	at := h.quietAt.Load()
	return at != 0 && !h.answered.Load() && clock.Real().Now().UnixNano()-at < int64(h.quietFor)
}

// idleConn fails a read or write once nothing has moved for timeout, or
// for first while its endpoint has not answered yet: a server that takes
// connections and never answers is given up in seconds, not after every
// retry of a minute each. Writing also extends the read deadline: a
// request just sent is waiting for its answer.
type idleConn struct {
	net.Conn
	timeout, first time.Duration
	heard          *heard
	moved          atomic.Int64 // when a byte last went out or came in (Unix ns)
}

// wait is how long the connection may sit idle now.
func (c *idleConn) wait() time.Duration {
	if c.heard.answered.Load() {
		return c.timeout
	}
	return min(c.first, c.timeout)
}

func (c *idleConn) Read(p []byte) (int, error) {
	// Deadlines of a net.Conn are on the wall clock.
	_ = c.SetReadDeadline(clock.Real().Now().Add(c.wait())) // fails only on a closed conn, as Read will
	n, err := c.Conn.Read(p)
	now := clock.Real().Now().UnixNano()
	if n > 0 {
		c.heard.answered.Store(true)
		c.moved.Store(now)
	}
	// Silent for the first-answer timeout, not only for a shorter idle
	// timeout a caller chose (that one is retried as ever).
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && !c.heard.answered.Load() &&
		now-c.moved.Load() >= int64(c.first) {
		c.heard.quietAt.Store(now)
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.moved.Store(clock.Real().Now().UnixNano())
	_ = c.SetDeadline(clock.Real().Now().Add(c.wait()))
	return c.Conn.Write(p)
}

// backoff returns how long to wait before retry number n (from 0): a
// random time up to 100 ms × 2^n, at most 2 s ("full jitter").
func backoff(n int) time.Duration {
	ceiling := min(100*time.Millisecond<<min(n, 10), 2*time.Second)
	return rand.N(ceiling) + time.Millisecond
}

// s3Body reads bytes [pos, end) of one version of an object. When the
// body breaks (a dropped connection, a timeout, a body shorter than
// announced) it asks for the rest of the same version, so that at most
// MaxRetries requests serve one read; then, or if the object has changed,
// reading fails. It never returns fewer bytes than the range without an
// error.
type s3Body struct {
	s         *S3
	ctx       context.Context
	key, name string
	etag      string
	body      io.ReadCloser // nil after a break or at the end
	pos, end  int64
	resumes   int
	cause     error // why the last body broke
	err       error // sticky
}

func (b *s3Body) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.pos >= b.end {
			b.closeBody()
			return 0, io.EOF
		}
		if b.body == nil {
			if err := b.resume(); err != nil {
				b.err = err
				return 0, err
			}
			continue
		}
		q := p
		if int64(len(q)) > b.end-b.pos {
			q = q[:b.end-b.pos]
		}
		n, err := b.body.Read(q)
		b.pos += int64(n)
		if err == io.EOF && b.pos < b.end {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			b.closeBody()
			b.cause = err
		}
		if n > 0 || len(p) == 0 {
			return n, nil
		}
	}
}

// resume asks for the rest of the range, after a pause.
func (b *s3Body) resume() error {
	if b.resumes+1 >= b.s.maxRetries { // the first request counts too
		return fmt.Errorf("get %s: %w at byte %d of %d after %d attempts (%s)",
			b.key, io.ErrUnexpectedEOF, b.pos, b.end, b.resumes+1, networkMessage(b.cause))
	}
	if err := b.s.clock.Sleep(b.ctx, backoff(b.resumes)); err != nil {
		return fmt.Errorf("get %s: %w", b.key, err)
	}
	b.resumes++
	rg, err := b.s.getRange(b.ctx, b.name, b.pos, b.end, b.etag)
	switch {
	case errors.Is(err, ErrPrecondition):
		return fmt.Errorf("get %s: object replaced while being read at byte %d: %w", b.key, b.pos, io.ErrUnexpectedEOF)
	case err != nil:
		return fmt.Errorf("get %s: resume at byte %d: %w", b.key, b.pos, err)
	case rg.n != b.end-b.pos:
		if rg.body != nil {
			rg.body.Close()
		}
		return fmt.Errorf("get %s: %w: object ends at byte %d, want %d", b.key, io.ErrUnexpectedEOF, b.pos+rg.n, b.end)
	}
	b.body = rg.body
	return nil
}

func (b *s3Body) closeBody() {
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
}

// Close ends the download.
func (b *s3Body) Close() error {
	b.closeBody()
	if b.err == nil {
		b.err = errors.New("read after close")
	}
	return nil
}
