package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
	"github.com/cas-ml/cas/remote/s3test"
)

// s3srv is the versitygw all S3 tests of the package share.
var s3srv s3test.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	s3srv.Stop()
	os.Exit(code)
}

// newS3 returns an S3 backend for cfg, failing the test on error.
func newS3(t testing.TB, cfg remote.S3Config) *remote.S3 {
	t.Helper()
	b, err := remote.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return b
}

var prefixes atomic.Int64

// TestS3 runs the conformance suite with a fresh prefix of one bucket per
// subtest.
func TestS3(t *testing.T) {
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		return newS3(t, srv.Config(bucket, fmt.Sprintf("suite/%d", prefixes.Add(1))))
	})
}

// TestS3BucketRoot runs the conformance suite at the root of a fresh
// bucket per subtest, without a prefix.
func TestS3BucketRoot(t *testing.T) {
	srv := s3srv.Get(t)
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		return newS3(t, srv.Config(srv.NewBucket(t), ""))
	})
}

// s3Env is a bucket on the shared server reached through a fault proxy.
type s3Env struct {
	srv    *s3test.Server
	bucket string
	proxy  *s3test.FaultProxy
}

func newS3Env(t *testing.T) *s3Env {
	t.Helper()
	srv := s3srv.Get(t)
	return &s3Env{srv: srv, bucket: srv.NewBucket(t), proxy: s3test.NewFaultProxy(t, srv.Endpoint)}
}

// config returns the configuration of a backend talking through the proxy.
func (e *s3Env) config() remote.S3Config {
	cfg := e.srv.Config(e.bucket, "p")
	cfg.Endpoint = e.proxy.URL
	return cfg
}

// backend returns a backend talking through the proxy, with cfg changed
// by the optional functions.
func (e *s3Env) backend(t *testing.T, change ...func(*remote.S3Config)) *remote.S3 {
	t.Helper()
	cfg := e.config()
	for _, f := range change {
		f(&cfg)
	}
	return newS3(t, cfg)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 42))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustPut(t *testing.T, b remote.Backend, key string, data []byte, opts remote.PutOptions) {
	t.Helper()
	if err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, b remote.Backend, key string) []byte {
	t.Helper()
	got, err := remote.ReadAll(t.Context(), b, key)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	return got
}

func checkContent(t *testing.T, b remote.Backend, key string, want []byte) {
	t.Helper()
	if got := mustGet(t, b, key); !bytes.Equal(got, want) {
		t.Fatalf("ReadAll(%q): got %d bytes, want the %d put", key, len(got), len(want))
	}
}

func checkMissing(t *testing.T, b remote.Backend, key string) {
	t.Helper()
	if info, err := b.Stat(t.Context(), key); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
}

func checkNoUploads(t *testing.T, e *s3Env) {
	t.Helper()
	n, err := e.srv.IncompleteUploads(e.bucket)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("incomplete multipart uploads: got %d, want 0", n)
	}
}

// isPart matches the requests uploading a part of a multipart upload.
func isPart(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Has("partNumber")
}

// isComplete matches the requests completing a multipart upload.
func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

func TestNewS3Config(t *testing.T) {
	const secret = "s3cr3t-never-shown"
	tests := []struct {
		name string
		cfg  remote.S3Config
	}{
		{"no bucket", remote.S3Config{Endpoint: "http://127.0.0.1:9000"}},
		{"bad scheme", remote.S3Config{Endpoint: "ftp://127.0.0.1:9000", Bucket: "b"}},
		{"no host", remote.S3Config{Endpoint: "http://", Bucket: "b"}},
		{"path", remote.S3Config{Endpoint: "http://127.0.0.1:9000/bucket", Bucket: "b"}},
		{"credentials in URL", remote.S3Config{Endpoint: "http://key:" + secret + "@127.0.0.1:9000", Bucket: "b"}},
		{"bad prefix", remote.S3Config{Endpoint: "http://127.0.0.1:9000", Bucket: "b", Prefix: "a/../b"}},
		{"small parts", remote.S3Config{Endpoint: "http://127.0.0.1:9000", Bucket: "b", PartSize: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := remote.NewS3(t.Context(), tt.cfg)
			if err == nil {
				t.Fatalf("NewS3: got %v, nil; want an error", b.Location())
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("NewS3 error %q shows the secret", err)
			}
		})
	}
}

func TestS3Location(t *testing.T) {
	tests := []struct {
		prefix, want string
	}{
		{"", "s3://bkt"},
		{"a/b", "s3://bkt/a/b"},
		{"/a/b/", "s3://bkt/a/b"},
	}
	for _, tt := range tests {
		b, err := remote.NewS3(t.Context(), remote.S3Config{Endpoint: "http://127.0.0.1:1", Bucket: "bkt", Prefix: tt.prefix})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Location(); got != tt.want {
			t.Errorf("Location with prefix %q: got %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

// TestS3Prefix checks that keys live under the prefix and that List
// reports them without it.
func TestS3Prefix(t *testing.T) {
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	inner := newS3(t, srv.Config(bucket, "team/proj"))
	root := newS3(t, srv.Config(bucket, ""))
	mustPut(t, inner, "refs/main", []byte("x"), remote.PutOptions{})
	checkContent(t, root, "team/proj/refs/main", []byte("x"))
	var keys []string
	if err := inner.List(t.Context(), "", func(info remote.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "refs/main" {
		t.Errorf("List: got %q, want [refs/main]", keys)
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentAddr listens on 127.0.0.1 and takes every connection without
// ever answering, until the test ends.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// A backend whose endpoint never answers fails every request at once once
// the first has waited FirstAnswer, as one whose endpoint refuses
// connections does: not after every retry of a minute each.
func TestS3SilentEndpoint(t *testing.T) {
	t.Parallel()
	b := newS3(t, remote.S3Config{Endpoint: "http://" + silentAddr(t), Bucket: "silent-bucket", AccessKey: "k", SecretKey: "secret-key-1",
		Region: "us-east-1", FirstAnswer: 200 * time.Millisecond})
	start := time.Now()
	_, err := b.Stat(t.Context(), "some/key")
	if !errors.Is(err, remote.ErrUnreachable) || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("Stat: %v; want ErrUnreachable, no answer within 200ms", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Stat took %v, want about FirstAnswer and quick retries", elapsed)
	}
	start = time.Now()
	if err := b.Check(t.Context()); !errors.Is(err, remote.ErrUnreachable) {
		t.Fatalf("Check after: %v; want ErrUnreachable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Check after the first silence took %v, want no more waiting", elapsed)
	}
}

func TestS3Check(t *testing.T) {
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	tests := []struct {
		name   string
		change func(*remote.S3Config)
		want   error // nil: Check succeeds
	}{
		{"ok", func(*remote.S3Config) {}, nil},
		{"unknown bucket", func(c *remote.S3Config) { c.Bucket = "no-such-bucket" }, remote.ErrNoBucket},
		{"wrong secret", func(c *remote.S3Config) { c.SecretKey = "wrong-secret-value" }, remote.ErrBadCredentials},
		{"unknown access key", func(c *remote.S3Config) { c.AccessKey = "nobody" }, remote.ErrBadCredentials},
		{"unreachable endpoint", func(c *remote.S3Config) { c.Endpoint = "http://" + freeAddr(t) }, remote.ErrUnreachable},
		{"unknown host", func(c *remote.S3Config) { c.Endpoint = "http://no-such-host.invalid:9000" }, remote.ErrUnreachable},
		// A stopped server, a network that drops packets: connections
		// are taken and nothing ever comes back.
		{"silent endpoint", func(c *remote.S3Config) {
			c.Endpoint = "http://" + silentAddr(t)
			c.FirstAnswer = 300 * time.Millisecond
		}, remote.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := srv.Config(bucket, "p")
			tt.change(&cfg)
			b := newS3(t, cfg)
			start := time.Now()
			err := b.Check(t.Context())
			elapsed := time.Since(start)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check: got error %v, want %v", err, tt.want)
			}
			msg := err.Error()
			t.Logf("Check: %s (%v)", msg, elapsed.Round(time.Millisecond))
			if strings.Contains(msg, "\n") {
				t.Errorf("Check error %q: want one line", msg)
			}
			for _, s := range []string{cfg.SecretKey, srv.SecretKey} {
				if strings.Contains(msg, s) {
					t.Errorf("Check error %q shows a secret key", msg)
				}
			}
			if !strings.Contains(msg, b.Location()) {
				t.Errorf("Check error %q: want the remote's location %s in it", msg, b.Location())
			}
			if elapsed > 15*time.Second {
				t.Errorf("Check took %v, want a prompt answer", elapsed)
			}
		})
	}
}

// locationRequests counts the requests for a bucket's location (GET
// ?location) the proxy has seen.
func locationRequests(p *s3test.FaultProxy) int {
	n := 0
	for _, r := range p.Seen() {
		if r.Method == http.MethodGet && r.Query.Has("location") {
			n++
		}
	}
	return n
}

func noRegion(_ *testing.T, c *remote.S3Config) { c.Region = "" }

// TestS3BucketRegion checks that BucketRegion asks the server at most
// once per backend, not at all when the region is configured or without
// credentials, and reads versitygw's empty location as us-east-1.
func TestS3BucketRegion(t *testing.T) {
	tests := []struct {
		name      string
		change    func(*testing.T, *remote.S3Config)
		before    func(*testing.T, *remote.S3) // requests made first
		want      string
		wantErr   error
		wantAsked int // location requests seen in all
	}{
		{"asked once", noRegion, nil, "us-east-1", nil, 1},
		{"learnt by a request", noRegion, func(t *testing.T, b *remote.S3) {
			mustPut(t, b, "k", []byte("x"), remote.PutOptions{})
		}, "us-east-1", nil, 1},
		{"configured", func(_ *testing.T, c *remote.S3Config) { c.Region = "eu-west-1" }, nil, "eu-west-1", nil, 0},
		{"no credentials", func(t *testing.T, c *remote.S3Config) {
			clearAWSEnv(t)
			c.Region, c.AccessKey, c.SecretKey = "", "", ""
		}, nil, "", remote.ErrBadCredentials, 0},
		// A failure is not kept: each call asks again.
		{"unknown bucket", func(_ *testing.T, c *remote.S3Config) { c.Region, c.Bucket = "", "no-such-bucket" }, nil, "", remote.ErrNoBucket, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newS3Env(t)
			b := e.backend(t, func(c *remote.S3Config) { tt.change(t, c) })
			if tt.before != nil {
				tt.before(t, b)
			}
			for i := range 2 {
				got, err := b.BucketRegion(t.Context())
				if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Fatalf("BucketRegion, call %d: got %q, %v; want %q, %v", i+1, got, err, tt.want, tt.wantErr)
				}
			}
			if n := locationRequests(e.proxy); n != tt.wantAsked {
				t.Errorf("location requests: got %d, want %d", n, tt.wantAsked)
			}
		})
	}
}

// TestS3BadCredentialsOps checks that every operation reports rejected
// credentials as such (HEAD requests, which carry no error document,
// report access denied).
func TestS3BadCredentialsOps(t *testing.T) {
	srv := s3srv.Get(t)
	cfg := srv.Config(srv.NewBucket(t), "")
	cfg.SecretKey = "wrong-secret-value"
	b := newS3(t, cfg)
	ctx := t.Context()
	err := b.Put(ctx, "k", bytes.NewReader([]byte("x")), 1, remote.PutOptions{})
	if !errors.Is(err, remote.ErrBadCredentials) {
		t.Errorf("Put: got error %v, want ErrBadCredentials", err)
	}
	if _, err := b.Get(ctx, "k", 0, -1); !errors.Is(err, remote.ErrBadCredentials) {
		t.Errorf("Get: got error %v, want ErrBadCredentials", err)
	}
	if err := b.List(ctx, "", func(remote.ObjectInfo) error { return nil }); !errors.Is(err, remote.ErrBadCredentials) {
		t.Errorf("List: got error %v, want ErrBadCredentials", err)
	}
	_, err = b.Stat(ctx, "k")
	if !errors.Is(err, remote.ErrAccessDenied) && !errors.Is(err, remote.ErrBadCredentials) {
		t.Errorf("Stat: got error %v, want ErrAccessDenied or ErrBadCredentials", err)
	}
	if err != nil && strings.Contains(err.Error(), cfg.SecretKey) {
		t.Errorf("Stat error %q shows the secret", err)
	}
}

// clearAWSEnv removes every credential source but the ones a test sets.
func clearAWSEnv(t *testing.T) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("HOME", dir)
}

func TestS3CredentialChain(t *testing.T) {
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	noKeys := func() remote.S3Config {
		cfg := srv.Config(bucket, "")
		cfg.AccessKey, cfg.SecretKey = "", ""
		return cfg
	}
	t.Run("environment", func(t *testing.T) {
		clearAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		if err := newS3(t, noKeys()).Check(t.Context()); err != nil {
			t.Fatalf("Check with keys in the environment: %v", err)
		}
	})
	t.Run("profile", func(t *testing.T) {
		clearAWSEnv(t)
		file := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
		content := fmt.Sprintf("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_PROFILE", "ci")
		if err := newS3(t, noKeys()).Check(t.Context()); err != nil {
			t.Fatalf("Check with keys in profile ci: %v", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		clearAWSEnv(t)
		err := newS3(t, noKeys()).Check(t.Context())
		if !errors.Is(err, remote.ErrBadCredentials) || !strings.Contains(err.Error(), "no credentials") {
			t.Fatalf("Check without credentials: got error %v, want ErrBadCredentials saying none were found", err)
		}
	})
}

// TestS3ConditionalRequests checks on the wire that conditional Puts send
// the conditions where S3 checks them, also for multipart uploads, and
// that the server honours them.
func TestS3ConditionalRequests(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t, func(c *remote.S3Config) { c.PartSize = 5 << 20 })
	ctx := t.Context()
	for _, size := range []int{1000, 11 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("cond/%d", size)
			v1, v2 := randomBytes(size), randomBytes(size+1)
			before := len(e.proxy.Seen())
			mustPut(t, b, key, v1, remote.PutOptions{IfNoneMatch: true})
			var sent bool
			for _, r := range e.proxy.Seen()[before:] {
				if r.Header.Get("If-None-Match") == "*" && (r.Method == http.MethodPut && !r.Query.Has("partNumber") || r.Method == http.MethodPost && r.Query.Has("uploadId")) {
					sent = true
				}
			}
			if !sent {
				t.Errorf("Put(IfNoneMatch): no PutObject or CompleteMultipartUpload request with If-None-Match: *")
			}
			err := b.Put(ctx, key, bytes.NewReader(v2), int64(len(v2)), remote.PutOptions{IfNoneMatch: true})
			if !errors.Is(err, remote.ErrExists) {
				t.Fatalf("second Put(IfNoneMatch): got error %v, want ErrExists", err)
			}
			checkContent(t, b, key, v1)
			info, err := b.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			err = b.Put(ctx, key, bytes.NewReader(v2), int64(len(v2)), remote.PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"})
			if !errors.Is(err, remote.ErrPrecondition) {
				t.Fatalf("Put(IfMatch stale): got error %v, want ErrPrecondition", err)
			}
			checkContent(t, b, key, v1)
			err = b.Put(ctx, key+"-none", bytes.NewReader(v2), int64(len(v2)), remote.PutOptions{IfMatch: info.ETag})
			if !errors.Is(err, remote.ErrNotFound) {
				t.Fatalf("Put(IfMatch) of a missing key: got error %v, want ErrNotFound", err)
			}
			checkMissing(t, b, key+"-none")
			mustPut(t, b, key, v2, remote.PutOptions{IfMatch: info.ETag})
			checkContent(t, b, key, v2)
		})
	}
	checkNoUploads(t, e)
}

// TestS3ChecksumSent checks that every upload request carries a CRC32C.
func TestS3ChecksumSent(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t, func(c *remote.S3Config) { c.PartSize = 5 << 20 })
	mustPut(t, b, "small", randomBytes(1000), remote.PutOptions{})
	mustPut(t, b, "large", randomBytes(11<<20), remote.PutOptions{})
	var uploads int
	for _, r := range e.proxy.Seen() {
		if r.Method != http.MethodPut {
			continue
		}
		uploads++
		if r.Header.Get("X-Amz-Trailer") != "x-amz-checksum-crc32c" && r.Header.Get("X-Amz-Checksum-Crc32c") == "" {
			t.Errorf("PUT %s %v: no CRC32C header or trailer (headers %v)", r.Path, r.Query, r.Header)
		}
	}
	if uploads != 4 {
		t.Errorf("got %d upload requests, want 4 (1 object, 3 parts)", uploads)
	}
}

// TestS3CorruptUpload flips a byte of upload bodies on their way to the
// server, which must refuse them thanks to the checksum: a Put retries
// and succeeds, or, corrupted every time, fails and stores nothing.
func TestS3CorruptUpload(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		match func(*http.Request) bool
	}{
		{"single", 100 << 10, s3test.Match(http.MethodPut, "/obj")},
		{"part", 11 << 20, isPart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newS3Env(t)
			b := e.backend(t, func(c *remote.S3Config) { c.PartSize, c.MaxRetries = 5<<20, 3 })
			data := randomBytes(tt.size)

			once := &s3test.Rule{Match: tt.match, Times: 1, Fault: s3test.FlipRequestByte(50000)}
			e.proxy.Add(once)
			mustPut(t, b, "obj", data, remote.PutOptions{})
			if once.Hits() != 1 {
				t.Fatalf("flipped %d requests, want 1", once.Hits())
			}
			checkContent(t, b, "obj", data)

			always := &s3test.Rule{Match: tt.match, Times: 1000, Fault: s3test.FlipRequestByte(50000)}
			e.proxy.Add(always)
			err := b.Put(t.Context(), "obj2", bytes.NewReader(data), int64(len(data)), remote.PutOptions{})
			if err == nil {
				t.Fatal("Put with every upload corrupted: got nil error, want failure")
			}
			t.Logf("Put: %v", err)
			if !strings.Contains(err.Error(), "obj2") || !strings.Contains(err.Error(), "BadDigest") {
				t.Errorf("Put error %q: want the key and BadDigest in it", err)
			}
			// Each part in flight is tried MaxRetries times.
			if h := always.Hits(); h < 3 || h > 3*3 {
				t.Errorf("corrupted %d requests, want 3 (MaxRetries) per object or part", h)
			}
			checkMissing(t, b, "obj2")
			checkNoUploads(t, e)
		})
	}
}

// TestS3Retries breaks the first two requests of every operation in
// several ways; each operation must succeed after retrying.
func TestS3Retries(t *testing.T) {
	tests := []struct {
		name   string
		fault  s3test.Fault
		writes bool // the fault only makes sense for requests with a body
	}{
		{"503 SlowDown", s3test.Status(http.StatusServiceUnavailable, "SlowDown"), false},
		{"500 InternalError", s3test.Status(http.StatusInternalServerError, "InternalError"), false},
		{"429", s3test.Status(http.StatusTooManyRequests, "TooManyRequests"), false},
		{"dropped upload", s3test.DropRequest(10000), true},
		{"lost response", s3test.DropResponse(), false},
		{"timeout", s3test.Delay(4 * time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newS3Env(t)
			b := e.backend(t, func(c *remote.S3Config) { c.PartSize, c.Timeout = 5<<20, time.Second })
			ctx := t.Context()
			small, large := randomBytes(100<<10), randomBytes(11<<20)
			breakNext := func(match func(*http.Request) bool) *s3test.Rule {
				r := &s3test.Rule{Match: match, Times: 2, Fault: tt.fault}
				e.proxy.Add(r)
				return r
			}
			check := func(op string, r *s3test.Rule, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				if r.Hits() != 2 {
					t.Errorf("%s: broke %d requests, want 2", op, r.Hits())
				}
			}
			r := breakNext(s3test.Match(http.MethodPut, "/small"))
			check("Put", r, b.Put(ctx, "small", bytes.NewReader(small), int64(len(small)), remote.PutOptions{IfNoneMatch: true}))
			r = breakNext(isPart)
			check("Put multipart", r, b.Put(ctx, "large", bytes.NewReader(large), int64(len(large)), remote.PutOptions{}))
			checkContent(t, b, "large", large)
			if tt.writes {
				return
			}
			r = breakNext(isComplete)
			check("Put multipart (complete)", r, b.Put(ctx, "large2", bytes.NewReader(large), int64(len(large)), remote.PutOptions{IfNoneMatch: true}))
			checkContent(t, b, "large2", large)

			r = breakNext(s3test.Match(http.MethodGet, "/small"))
			got, err := remote.ReadAll(ctx, b, "small")
			check("Get", r, err)
			if !bytes.Equal(got, small) {
				t.Fatalf("Get: got %d bytes, want the %d put", len(got), len(small))
			}
			r = breakNext(s3test.Match(http.MethodHead, "/small"))
			_, err = b.Stat(ctx, "small")
			check("Stat", r, err)
			r = breakNext(s3test.Match(http.MethodGet, "/"+e.bucket))
			err = b.List(ctx, "", func(remote.ObjectInfo) error { return nil })
			check("List", r, err)
			r = breakNext(s3test.Match(http.MethodDelete, "/small"))
			check("Delete", r, b.Delete(ctx, "small"))
			checkMissing(t, b, "small")
			checkNoUploads(t, e)
		})
	}
}

// TestS3RetriesBounded checks that a request failing every time is tried
// MaxRetries times, then fails with an error naming the key.
func TestS3RetriesBounded(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t, func(c *remote.S3Config) { c.MaxRetries = 3 })
	mustPut(t, b, "there", []byte("x"), remote.PutOptions{})
	ctx := t.Context()
	ops := []struct {
		name, method, key string
		call              func(key string) error
	}{
		{"Put", http.MethodPut, "k-put", func(key string) error {
			return b.Put(ctx, key, bytes.NewReader([]byte("x")), 1, remote.PutOptions{})
		}},
		{"Get", http.MethodGet, "there", func(key string) error {
			_, err := remote.ReadAll(ctx, b, key)
			return err
		}},
		{"Stat", http.MethodHead, "there", func(key string) error {
			_, err := b.Stat(ctx, key)
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			r := &s3test.Rule{Match: s3test.Match(op.method, "/"+op.key), Times: 1000, Fault: s3test.Status(http.StatusServiceUnavailable, "SlowDown")}
			e.proxy.Add(r)
			err := op.call(op.key)
			if err == nil {
				t.Fatal("got nil error, want failure")
			}
			t.Logf("%s: %v", op.name, err)
			if !strings.Contains(err.Error(), op.key) || !strings.Contains(err.Error(), "after 3 attempts") {
				t.Errorf("error %q: want the key and \"after 3 attempts\" in it", err)
			}
			if r.Hits() != 3 {
				t.Errorf("tried %d times, want 3", r.Hits())
			}
		})
	}
}

// TestS3GetResume breaks download bodies; reads must resume and return
// exactly the object's bytes.
func TestS3GetResume(t *testing.T) {
	tests := []struct {
		name  string
		fault s3test.Fault
	}{
		{"connection dropped", s3test.CutResponse(100000)},
		{"connection dropped at once", s3test.CutResponse(0)},
		{"short body", s3test.ShortResponse(5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newS3Env(t)
			b := e.backend(t)
			data := randomBytes(1 << 20)
			mustPut(t, b, "obj", data, remote.PutOptions{})
			for _, rg := range []struct{ off, n int64 }{{0, -1}, {1000, 300000}, {500000, -1}} {
				r := &s3test.Rule{Match: s3test.Match(http.MethodGet, "/obj"), Times: 2, Fault: tt.fault}
				e.proxy.Add(r)
				rc, err := b.Get(t.Context(), "obj", rg.off, rg.n)
				if err != nil {
					t.Fatalf("Get(%d, %d): %v", rg.off, rg.n, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("Get(%d, %d): read: %v", rg.off, rg.n, err)
				}
				want := data[rg.off:]
				if rg.n >= 0 {
					want = want[:rg.n]
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Get(%d, %d): got %d bytes, want %d of the object", rg.off, rg.n, len(got), len(want))
				}
				if r.Hits() != 2 {
					t.Errorf("Get(%d, %d): broke %d responses, want 2", rg.off, rg.n, r.Hits())
				}
			}
		})
	}
}

// TestS3GetNeverShort breaks every download body: reading must fail
// with io.ErrUnexpectedEOF after MaxRetries resumptions, having returned
// only bytes of the object.
func TestS3GetNeverShort(t *testing.T) {
	for _, fault := range []s3test.Fault{s3test.CutResponse(10000), s3test.ShortResponse(10000)} {
		e := newS3Env(t)
		b := e.backend(t, func(c *remote.S3Config) { c.MaxRetries = 3 })
		data := randomBytes(1 << 20)
		mustPut(t, b, "obj", data, remote.PutOptions{})
		r := &s3test.Rule{Match: s3test.Match(http.MethodGet, "/obj"), Times: 1000, Fault: fault}
		e.proxy.Add(r)
		rc, err := b.Get(t.Context(), "obj", 0, -1)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("reading a body broken every time: got %d bytes, error %v; want io.ErrUnexpectedEOF", len(got), err)
		}
		t.Logf("read: %v", err)
		if !strings.Contains(err.Error(), "obj") {
			t.Errorf("error %q: want the key in it", err)
		}
		if !bytes.Equal(got, data[:len(got)]) {
			t.Errorf("read %d bytes that are not the object's", len(got))
		}
		if r.Hits() != 3 {
			t.Errorf("made %d requests, want 3 (MaxRetries)", r.Hits())
		}
	}
}

// TestS3GetReplacedDuringRead replaces an object while a broken download
// of it resumes: the read must fail, not mix versions.
func TestS3GetReplacedDuringRead(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t)
	v1, v2 := randomBytes(1<<20), randomBytes(1<<20+1)
	mustPut(t, b, "obj", v1, remote.PutOptions{})
	e.proxy.Add(&s3test.Rule{Match: s3test.Match(http.MethodGet, "/obj"), Times: 1, Fault: s3test.CutResponse(100000)})
	rc, err := b.Get(t.Context(), "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 50000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "obj", v2, remote.PutOptions{})
	rest, err := io.ReadAll(rc)
	if err == nil {
		t.Fatalf("read across a replacement: got %d bytes and no error, want an error", len(head)+len(rest))
	}
	t.Logf("read: %v", err)
	if got := append(head, rest...); !bytes.Equal(got, v1[:len(got)]) {
		t.Errorf("read bytes that are not the first version's")
	}
}

// TestS3AmbiguousWrites loses the answer to writes the server performed:
// the retry meets the write's own effect (the key exists, or has changed)
// and the Put must still succeed.
func TestS3AmbiguousWrites(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t, func(c *remote.S3Config) { c.PartSize = 5 << 20 })
	ctx := t.Context()
	small, large := randomBytes(1000), randomBytes(11<<20)
	lose := func(match func(*http.Request) bool) *s3test.Rule {
		r := &s3test.Rule{Match: match, Times: 1, Fault: s3test.DropResponse()}
		e.proxy.Add(r)
		return r
	}
	tests := []struct {
		name  string
		key   string
		data  []byte
		match func(*http.Request) bool
		opts  func() remote.PutOptions
	}{
		{"IfNoneMatch", "a", small, s3test.Match(http.MethodPut, "/a"), func() remote.PutOptions { return remote.PutOptions{IfNoneMatch: true} }},
		{"IfMatch", "a", append(small, 1), s3test.Match(http.MethodPut, "/a"), func() remote.PutOptions {
			info, err := b.Stat(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			return remote.PutOptions{IfMatch: info.ETag}
		}},
		{"multipart IfNoneMatch", "big", large, isComplete, func() remote.PutOptions { return remote.PutOptions{IfNoneMatch: true} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts()
			r := lose(tt.match)
			if err := b.Put(ctx, tt.key, bytes.NewReader(tt.data), int64(len(tt.data)), opts); err != nil {
				t.Fatalf("Put with its answer lost: %v", err)
			}
			if r.Hits() != 1 {
				t.Fatalf("lost %d answers, want 1", r.Hits())
			}
			checkContent(t, b, tt.key, tt.data)
		})
	}
	// A refusal that is not the Put's own doing still fails.
	lose(s3test.Match(http.MethodPut, "/a"))
	err := b.Put(ctx, "a", bytes.NewReader(small), int64(len(small)), remote.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, remote.ErrExists) {
		t.Fatalf("Put(IfNoneMatch) of an existing key with its answer lost: got error %v, want ErrExists", err)
	}
}

// TestS3Multipart stores objects larger than a part from every kind of
// reader, and checks that wrong sizes store nothing.
func TestS3Multipart(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t, func(c *remote.S3Config) { c.PartSize = 5 << 20 })
	ctx := t.Context()
	for _, size := range []int{5<<20 + 1, 10 << 20, 12<<20 + 7} {
		data := randomBytes(size)
		readers := []struct {
			name string
			r    io.Reader
			size int64
		}{
			{"ReaderAt", bytes.NewReader(data), int64(size)},
			{"stream", struct{ io.Reader }{bytes.NewReader(data)}, int64(size)},
			{"unknown size", struct{ io.Reader }{bytes.NewReader(data)}, -1},
		}
		for _, rd := range readers {
			key := fmt.Sprintf("mp/%d/%s", size, rd.name)
			if err := b.Put(ctx, key, rd.r, rd.size, remote.PutOptions{}); err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			checkContent(t, b, key, data)
			info, err := b.Stat(ctx, key)
			if err != nil || info.Size != int64(size) {
				t.Fatalf("Stat(%s) = %+v, %v; want size %d", key, info, err, size)
			}
		}
	}
	data := randomBytes(12 << 20)
	for _, tt := range []struct {
		name string
		n    int   // bytes the reader yields
		size int64 // size passed to Put
	}{
		{"short", len(data) - 1, int64(len(data))},
		{"long", len(data), int64(len(data) - 1)},
	} {
		for _, r := range []io.Reader{bytes.NewReader(data[:tt.n]), struct{ io.Reader }{bytes.NewReader(data[:tt.n])}} {
			if err := b.Put(ctx, "mp/"+tt.name, r, tt.size, remote.PutOptions{}); err == nil {
				t.Fatalf("Put of %d bytes with size %d: got nil error, want failure", tt.n, tt.size)
			}
			checkMissing(t, b, "mp/"+tt.name)
		}
	}
	checkNoUploads(t, e)
}

// TestS3CancelMultipart cancels a multipart upload midway: nothing may
// be stored, and the upload must be aborted.
func TestS3CancelMultipart(t *testing.T) {
	e := newS3Env(t)
	b := e.backend(t, func(c *remote.S3Config) { c.PartSize = 5 << 20 })
	e.proxy.Add(&s3test.Rule{Match: isPart, Times: 1000, Fault: s3test.Delay(time.Second)})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	data := randomBytes(11 << 20)
	err := b.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), remote.PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with a context ending midway: got error %v, want context.DeadlineExceeded", err)
	}
	checkMissing(t, b, "big")
	checkNoUploads(t, e)
}
