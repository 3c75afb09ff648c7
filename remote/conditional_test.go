package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/s3test"
)

// ignoring is a backend that drops the conditions its flags name before
// passing a Put on, as a service that ignores them would.
type ignoring struct {
	remote.Backend
	noneMatch, match bool
}

func (b *ignoring) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	if b.noneMatch {
		opts.IfNoneMatch = false
	}
	if b.match {
		opts.IfMatch = ""
	}
	return b.Backend.Put(ctx, key, r, size, opts)
}

// stripping returns a proxy to the shared server that drops the
// conditions of every write, re-signing it.
func stripping(t *testing.T, srv *s3test.Server) *s3test.FaultProxy {
	t.Helper()
	return s3test.NewFaultProxy(t, srv.Endpoint,
		&s3test.Rule{Match: s3test.Conditional, Times: 1 << 30, Fault: s3test.StripConditions(srv.SecretKey)})
}

// probeKeys returns the keys under remote.ProbePrefix.
func probeKeys(t *testing.T, be remote.Backend) []string {
	t.Helper()
	var keys []string
	err := be.List(t.Context(), remote.ProbePrefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", remote.ProbePrefix, err)
	}
	return keys
}

// The probe passes on every backend that enforces conditions, names the
// condition a service ignores, and leaves no probe behind either way.
func TestProbeConditional(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	proxy := stripping(t, srv)
	tests := []struct {
		name string
		be   func(t *testing.T) remote.Backend
		// wantHeader is the condition the verdict names; "" for a pass.
		wantHeader string
	}{
		{"mem", func(t *testing.T) remote.Backend { return remote.NewMem() }, ""},
		{"local", func(t *testing.T) remote.Backend {
			l, err := remote.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return l
		}, ""},
		{"versitygw", func(t *testing.T) remote.Backend { return newS3(t, srv.Config(bucket, "direct")) }, ""},
		{"If-None-Match ignored", func(t *testing.T) remote.Backend {
			return &ignoring{Backend: remote.NewMem(), noneMatch: true}
		}, "If-None-Match"},
		{"If-Match ignored", func(t *testing.T) remote.Backend {
			return &ignoring{Backend: remote.NewMem(), match: true}
		}, "If-Match"},
		{"versitygw behind a stripping proxy", func(t *testing.T) remote.Backend {
			cfg := srv.Config(bucket, "stripped")
			cfg.Endpoint = proxy.URL
			return newS3(t, cfg)
		}, "If-None-Match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := tt.be(t)
			err := remote.ProbeConditional(t.Context(), be)
			if tt.wantHeader == "" {
				if err != nil {
					t.Fatalf("ProbeConditional: got %v, want nil", err)
				}
			} else {
				var ce *remote.ConditionalError
				if !errors.As(err, &ce) || !errors.Is(err, remote.ErrNoConditionalWrites) {
					t.Fatalf("ProbeConditional: got %v, want a *ConditionalError wrapping ErrNoConditionalWrites", err)
				}
				if ce.Header != tt.wantHeader || ce.Location != be.Location() {
					t.Errorf("verdict names %s on %s, want %s on %s", ce.Header, ce.Location, tt.wantHeader, be.Location())
				}
				if !strings.Contains(err.Error(), be.Location()) {
					t.Errorf("error %q does not name %s", err, be.Location())
				}
			}
			if keys := probeKeys(t, be); len(keys) != 0 {
				t.Errorf("probe left %v behind", keys)
			}
		})
	}
}

// The probe costs six requests on S3 when the service passes, and as
// many when it fails; every write it makes is conditional.
func TestProbeConditionalRequests(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	tests := []struct {
		name  string
		proxy func(t *testing.T) *s3test.FaultProxy
		pass  bool
		// want is the number of requests, by method.
		want map[string]int
	}{
		{"pass", func(t *testing.T) *s3test.FaultProxy { return s3test.NewFaultProxy(t, srv.Endpoint) }, true,
			map[string]int{"PUT": 3, "HEAD": 2, "DELETE": 1}},
		{"fail", func(t *testing.T) *s3test.FaultProxy { return stripping(t, srv) }, false,
			map[string]int{"PUT": 2, "HEAD": 3, "DELETE": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := tt.proxy(t)
			cfg := srv.Config(bucket, tt.name)
			cfg.Endpoint = proxy.URL
			err := remote.ProbeConditional(t.Context(), newS3(t, cfg))
			if (err == nil) != tt.pass {
				t.Fatalf("ProbeConditional: got %v, want pass=%v", err, tt.pass)
			}
			got := map[string]int{}
			for _, r := range proxy.Seen() {
				got[r.Method]++
				if r.Method == "PUT" && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Match") == "" {
					t.Errorf("unconditional PUT %s", r.Path)
				}
			}
			if len(got) != len(tt.want) || got["PUT"] != tt.want["PUT"] || got["HEAD"] != tt.want["HEAD"] || got["DELETE"] != tt.want["DELETE"] {
				t.Errorf("requests: got %v (%d), want %v", got, proxy.Requests(), tt.want)
			}
			t.Logf("probe (%s): %d requests %v", tt.name, proxy.Requests(), got)
		})
	}
}

// Credentials that may only read make the probe fail with the refusal,
// which is no verdict on the service.
func TestProbeConditionalReadOnly(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	bucket := srv.NewBucket(t)
	ro := srv.ReadOnly(t)
	cfg := srv.Config(bucket, "ro")
	cfg.Endpoint = ro.Endpoint
	err := remote.ProbeConditional(t.Context(), newS3(t, cfg))
	var nw *remote.NoWriteError
	if !errors.Is(err, remote.ErrAccessDenied) || !errors.As(err, &nw) || errors.Is(err, remote.ErrNoConditionalWrites) {
		t.Fatalf("ProbeConditional on a read-only server: got %v, want a NoWriteError and no verdict", err)
	}
}

// countingPuts counts the Puts of probe keys that reach a backend.
type countingPuts struct {
	remote.Backend
	probes atomic.Int64
}

func (c *countingPuts) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	if strings.HasPrefix(key, remote.ProbePrefix) {
		c.probes.Add(1)
	}
	return c.Backend.Put(ctx, key, r, size, opts)
}

func putString(ctx context.Context, be remote.Backend, key, data string, opts remote.PutOptions) error {
	return be.Put(ctx, key, strings.NewReader(data), int64(len(data)), opts)
}

// A Probed backend probes once, before its first conditional Put, however
// many writers race to it; it keeps a verdict, and refuses every
// conditional Put of a service that ignores conditions.
func TestProbed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		inner   remote.Backend
		wantErr error
		// probeWrites is how many Puts one probe makes: it stops at the
		// first condition ignored.
		probeWrites int64
	}{
		{"enforcing", remote.NewMem(), nil, 3},
		{"ignoring", &ignoring{Backend: remote.NewMem(), noneMatch: true, match: true}, remote.ErrNoConditionalWrites, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counted := &countingPuts{Backend: tt.inner}
			be := remote.WithProbe(counted)
			// Puts without conditions pass without a probe.
			if err := putString(t.Context(), be, "plain", "x", remote.PutOptions{}); err != nil {
				t.Fatalf("unconditional Put: %v", err)
			}
			if n := counted.probes.Load(); n != 0 {
				t.Fatalf("an unconditional Put made %d probe writes, want 0", n)
			}
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Go(func() {
					errs[i] = putString(t.Context(), be, "refs/r"+string(rune('a'+i)), "ref", remote.PutOptions{IfNoneMatch: true})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Errorf("conditional Put %d: got %v, want %v", i, err, tt.wantErr)
				}
			}
			if n := counted.probes.Load(); n != tt.probeWrites {
				t.Errorf("%d probe writes, want %d (one probe)", n, tt.probeWrites)
			}
			_, err := tt.inner.Stat(t.Context(), "refs/ra")
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("Stat(refs/ra) after the Puts: %v", err)
			}
		})
	}
}

// An error that is no verdict (a failed request) is not kept: the next
// conditional Put probes again.
func TestProbedRetriesAfterError(t *testing.T) {
	t.Parallel()
	f := remote.NewFault(remote.NewMem())
	var fail atomic.Bool
	fail.Store(true)
	f.FailPut = func(key string) error {
		if strings.HasPrefix(key, remote.ProbePrefix) && fail.Load() {
			return remote.ErrInjected
		}
		return nil
	}
	be := remote.WithProbe(f)
	if err := putString(t.Context(), be, "refs/a", "1", remote.PutOptions{IfNoneMatch: true}); !errors.Is(err, remote.ErrInjected) {
		t.Fatalf("Put while the probe fails: got %v, want ErrInjected", err)
	}
	if _, err := f.Stat(t.Context(), "refs/a"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("the Put wrote although its probe failed: Stat = %v", err)
	}
	fail.Store(false)
	if err := putString(t.Context(), be, "refs/a", "1", remote.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("Put once the probe can run: %v", err)
	}
	if got := mustGet(t, f, "refs/a"); !bytes.Equal(got, []byte("1")) {
		t.Errorf("refs/a = %q, want %q", got, "1")
	}
}

// WithProbe keeps the ability to retain objects, and adds none.
func TestWithProbeRetainer(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	if _, ok := remote.WithProbe(newS3(t, srv.Config(srv.NewBucket(t), ""))).(remote.Retainer); !ok {
		t.Error("WithProbe(S3) is not a Retainer")
	}
	if _, ok := remote.WithProbe(remote.NewMem()).(remote.Retainer); ok {
		t.Error("WithProbe(Mem) is a Retainer")
	}
	if _, ok := remote.WithProbe(remote.NewMem()).(remote.Prober); !ok {
		t.Error("WithProbe(Mem) is not a Prober")
	}
}
