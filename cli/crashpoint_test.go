package cli_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/s3test"
)

// TestS3CrashPoints breaks, in turn, each request that a `cas push` to an
// S3 remote makes (through s3test.FaultProxy in front of versitygw), in
// three ways: refused (403, which no client retries: the push stops there,
// as if it had been killed), answered but the answer lost (the server
// acted; the client retries or fails), and cut after 1000 bytes of the
// request (the server never acts). After each, the bucket alone must
// hold a store that verifies and serves the refs it had; the same push
// run again must complete; then a fresh store opened on the bucket alone
// must verify and restore every ref byte for byte, and every pack and
// index segment in the bucket must hash to its name.
func TestS3CrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes to an S3 server once per request of a push")
	}
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	const budget = 90 * time.Second
	start := time.Now()
	src := t.TempDir()
	base := filepath.Join(src, "base")
	writeTree(t, base, 21)
	fresh := filepath.Join(src, "fresh")
	writeTree(t, fresh, 22)
	// Shared with base: only part of fresh is new.
	if err := os.WriteFile(filepath.Join(fresh, "shared.bin"), randomBytes(700_000, 21), 0o644); err != nil {
		t.Fatal(err)
	}

	modes := []struct {
		name  string
		fault s3test.Fault
	}{
		{"refused", s3test.Status(http.StatusForbidden, "AccessDenied")},
		{"answer-lost", s3test.DropResponse()},
		{"upload-cut", s3test.DropRequest(1000)},
	}
	// One run without a fault counts the requests of the push.
	n := s3CrashPoint(t, srv, base, fresh, 0, s3test.Fault{})
	if n == 0 {
		t.Fatal("the push made no request through the proxy")
	}
	t.Logf("a push to S3 makes %d requests", n)
	points := 0
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			for i := 1; i <= n; i++ {
				if time.Since(start) > budget {
					t.Logf("out of time at request %d", i)
					break
				}
				t.Run(fmt.Sprintf("request%02d", i), func(t *testing.T) {
					s3CrashPoint(t, srv, base, fresh, i, m.fault)
				})
				points++
			}
		})
	}
	t.Logf("%d S3 crash points in %s", points, time.Since(start).Round(time.Second))
}

// s3CrashPoint sets up a store that pushed base to a new bucket, then
// pushes fresh to it with request i of that push broken by fault (none
// for i == 0), and checks the bucket. It returns the number of requests
// the push made.
func s3CrashPoint(t *testing.T, srv *s3test.Server, base, fresh string, i int, fault s3test.Fault) int {
	t.Helper()
	bucket := srv.NewBucket(t)
	url := "s3://" + bucket + "/c"
	var armed atomic.Bool
	var seen atomic.Int64
	rule := &s3test.Rule{Times: 1, Fault: fault, Match: func(*http.Request) bool {
		return armed.Load() && seen.Add(1) == int64(i)
	}}
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	if i > 0 {
		proxy.Add(rule)
	}
	var count atomic.Int64
	proxy.Add(&s3test.Rule{Times: 1, Match: func(*http.Request) bool {
		if armed.Load() {
			count.Add(1)
		}
		return false
	}})
	a := t.TempDir()
	mustCas(t, a, "init", "--chunk-avg", "64KiB")
	mustCas(t, a, "remote", "add", "origin", url, "--endpoint", proxy.URL)
	mustCas(t, a, "push", base, "--name", "base", "-q")
	wants := map[string]string{"base": base}

	armed.Store(true)
	code, _, errOut := casIn(t, a, "push", fresh, "--name", "grp/fresh", "-q")
	armed.Store(false)
	if i == 0 {
		if code != 0 {
			t.Fatalf("push without a fault: exit %d\n%s", code, errOut)
		}
		checkBucket(t, srv, bucket, "c", "after the push", map[string]string{"base": base, "grp/fresh": fresh})
		return int(count.Load())
	}
	if i > 0 && rule.Hits() == 0 {
		t.Fatalf("request %d never came: the push made fewer requests this time", i)
	}
	t.Logf("push with request %d broken: exit %d %s", i, code, strings.TrimSpace(errOut))
	after := wants
	if code == 0 {
		after = map[string]string{"base": base, "grp/fresh": fresh}
	}
	checkBucket(t, srv, bucket, "c", "after the broken push", after)
	if t.Failed() {
		return 0
	}
	if code, _, errOut := casIn(t, a, "push", fresh, "--name", "grp/fresh", "-q"); code != 0 {
		t.Fatalf("push again: exit %d\n%s", code, errOut)
	}
	checkBucket(t, srv, bucket, "c", "after the push again", map[string]string{"base": base, "grp/fresh": fresh})
	return int(count.Load())
}

// checkBucket opens a store on the bucket alone, without the proxy, and
// checks that it verifies, that every ref of wants restores byte for byte,
// and that every pack and index segment hashes to its name.
func checkBucket(t *testing.T, srv *s3test.Server, bucket, prefix, when string, wants map[string]string) {
	t.Helper()
	if be := checkBucketRefs(t, srv, bucket, prefix, when, wants); be != nil {
		readBackBucket(t, be, when)
	}
}

// checkBucketRefs is checkBucket without reading every object back; it
// returns the bucket's backend, nil if it could not be opened.
func checkBucketRefs(t *testing.T, srv *s3test.Server, bucket, prefix, when string, wants map[string]string) remote.Backend {
	t.Helper()
	ctx := t.Context()
	be, err := remote.NewS3(ctx, srv.Config(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	r, err := cas.OpenRemoteOnly(ctx, be)
	if err != nil {
		t.Errorf("%s: open a store on the bucket alone: %v", when, err)
		return nil
	}
	rep, err := r.VerifyAll(ctx, nil)
	switch {
	case err != nil:
		t.Errorf("%s: verify the bucket: %v", when, err)
	case !rep.OK():
		t.Errorf("%s: verify the bucket found damage: %+v", when, rep.Problems)
	}
	for ref, src := range wants {
		obj, err := r.Resolve(ctx, ref)
		if err != nil {
			t.Errorf("%s: resolve %s on the bucket: %v", when, ref, err)
			continue
		}
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := r.Restore(ctx, obj, dest, cas.RestoreOptions{}); err != nil {
			t.Errorf("%s: restore %s from the bucket: %v", when, ref, err)
			continue
		}
		if d := treeDiff(src, dest, ""); len(d) > 0 {
			t.Errorf("%s: %s restored from the bucket differs: %v", when, ref, d)
		}
	}
	return be
}

// readBackBucket reads every object of be: what is named by its digest
// has it (a pack, format.PackNamed: its trailer's, or its bytes').
func readBackBucket(t *testing.T, be remote.Backend, when string) {
	t.Helper()
	ctx := t.Context()
	err := be.List(ctx, "", func(oi remote.ObjectInfo) error {
		if !strings.HasPrefix(oi.Key, "packs/") && !strings.HasPrefix(oi.Key, "index/") {
			_, err := remote.ReadAll(ctx, be, oi.Key)
			return err
		}
		want, err := digest.ParseHex(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
		if err != nil {
			t.Errorf("%s: %s: not named by a digest: %v", when, oi.Key, err)
			return nil
		}
		data, err := remote.ReadAll(ctx, be, oi.Key)
		if err != nil {
			return err
		}
		named := digest.Of(data) == want
		if strings.HasPrefix(oi.Key, "packs/") {
			named = format.PackNamed(want, data)
		}
		if !named {
			t.Errorf("%s: %s: %d bytes hashing to %s: corrupt", when, oi.Key, len(data), digest.Of(data).Short())
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: read back the bucket: %v", when, err)
	}
}
