package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/s3test"
)

var lockBuckets atomic.Int64

// newLockBucket creates a bucket with Object Lock enabled on srv and
// returns its name.
func newLockBucket(t *testing.T, srv *s3test.Server) string {
	t.Helper()
	name := fmt.Sprintf("cas-lock-%d", lockBuckets.Add(1))
	if err := srv.CreateBucket(name, true); err != nil {
		t.Fatal(err)
	}
	return name
}

// rawClient returns a minio-go client of srv, to look at what the backend
// cannot show (object versions, delete markers).
func rawClient(t *testing.T, srv *s3test.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds:  credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region: srv.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkRetainedUntil checks that key is retained until want.
func checkRetainedUntil(t *testing.T, b remote.Retainer, key string, want time.Time) {
	t.Helper()
	got, err := b.RetainedUntil(t.Context(), key)
	if err != nil {
		t.Fatalf("RetainedUntil(%q): %v", key, err)
	}
	if !got.Equal(want) {
		t.Fatalf("RetainedUntil(%q): got %v, want %v", key, got, want)
	}
}

func TestS3RetainCheck(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	tests := []struct {
		name   string
		bucket string
		want   error // nil: objects can be retained
	}{
		{"object lock", newLockBucket(t, srv), nil},
		{"no object lock", srv.NewBucket(t), remote.ErrNoObjectLock},
		{"unknown bucket", "no-such-bucket", remote.ErrNoBucket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newS3(t, srv.Config(tt.bucket, "p"))
			err := b.CheckRetention(t.Context())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckRetention: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckRetention: got error %v, want %v", err, tt.want)
			}
			msg := err.Error()
			t.Logf("CheckRetention: %s", msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("CheckRetention error %q: want one line", msg)
			}
			if !strings.Contains(msg, b.Location()) {
				t.Errorf("CheckRetention error %q: want the remote's location %s in it", msg, b.Location())
			}
		})
	}
}

// TestS3Retain retains an object in a bucket with Object Lock and checks
// that versitygw, which keeps no versions, then refuses to delete or
// replace it, and that retention is only ever extended.
func TestS3Retain(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	bucket := newLockBucket(t, srv)
	cfg := srv.Config(bucket, "p")
	cfg.PartSize = 5 << 20
	b := newS3(t, cfg)
	ctx := t.Context()
	const key = "packs/retained"
	data := randomBytes(1000)
	mustPut(t, b, key, data, remote.PutOptions{IfNoneMatch: true})
	checkRetainedUntil(t, b, key, time.Time{})

	// A date between seconds is rounded up to the next one.
	until := time.Now().Add(time.Hour).Truncate(time.Second).Add(300 * time.Millisecond)
	if err := b.Retain(ctx, key, until); err != nil {
		t.Fatalf("Retain: %v", err)
	}
	want := until.Truncate(time.Second).Add(time.Second)
	checkRetainedUntil(t, b, key, want)
	if got, err := remote.RetainedUntil(ctx, b, key); err != nil || !got.Equal(want) {
		t.Fatalf("remote.RetainedUntil: got %v, %v; want %v, nil", got, err, want)
	}

	// Retaining again, or for less time, changes nothing; for longer
	// extends.
	for _, earlier := range []time.Time{until, until.Add(-30 * time.Minute)} {
		if err := b.Retain(ctx, key, earlier); err != nil {
			t.Fatalf("Retain(%v) after Retain(%v): %v", earlier, until, err)
		}
		checkRetainedUntil(t, b, key, want)
	}
	later := want.Add(time.Hour)
	if err := b.Retain(ctx, key, later); err != nil {
		t.Fatalf("Retain(later): %v", err)
	}
	checkRetainedUntil(t, b, key, later)

	// Neither a Delete nor a Put of any kind gets through.
	err := b.Delete(ctx, key)
	t.Logf("Delete of a retained object: %v", err)
	if !errors.Is(err, remote.ErrAccessDenied) {
		t.Errorf("Delete of a retained object: got error %v, want ErrAccessDenied", err)
	}
	// versitygw checks the lock before If-None-Match, so a conditional
	// Put of a retained key is refused as denied (403), not as existing
	// (412); ErrExists would be as right.
	for _, size := range []int{1001, 11 << 20} {
		other := randomBytes(size)
		for _, opts := range []remote.PutOptions{{}, {IfNoneMatch: true}} {
			err := b.Put(ctx, key, bytes.NewReader(other), int64(len(other)), opts)
			t.Logf("Put(%d bytes, %+v) over a retained object: %v", size, opts, err)
			refused := errors.Is(err, remote.ErrAccessDenied) || opts.IfNoneMatch && errors.Is(err, remote.ErrExists)
			if !refused {
				t.Errorf("Put(%d bytes, %+v) over a retained object: got error %v, want ErrAccessDenied", size, opts, err)
			}
		}
	}
	if n, err := srv.IncompleteUploads(bucket); err != nil || n != 0 {
		t.Errorf("incomplete multipart uploads: got %d, %v; want 0", n, err)
	}
	checkContent(t, b, key, data)
	checkRetainedUntil(t, b, key, later)

	// No delete marker or other version hides the object.
	var versions []string
	for obj := range rawClient(t, srv).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "p/" + key, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatalf("ListObjects(WithVersions): %v", obj.Err)
		}
		versions = append(versions, fmt.Sprintf("%s version %q latest=%v deleteMarker=%v", obj.Key, obj.VersionID, obj.IsLatest, obj.IsDeleteMarker))
		if obj.IsDeleteMarker {
			t.Errorf("delete marker for %s after a refused Delete", obj.Key)
		}
	}
	t.Logf("versions: %q", versions)
	if len(versions) != 1 {
		t.Errorf("versions of %s: got %d, want 1", key, len(versions))
	}
}

// TestS3LockBucketConditionalPuts checks that a bucket with Object Lock
// behaves like any other for objects that are not retained: conditional
// Puts, single and multipart, overwrites and Deletes.
func TestS3LockBucketConditionalPuts(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	cfg := srv.Config(newLockBucket(t, srv), "p")
	cfg.PartSize = 5 << 20
	b := newS3(t, cfg)
	ctx := t.Context()
	for _, size := range []int{1000, 11 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("cond/%d", size)
			v1, v2 := randomBytes(size), randomBytes(size+1)
			mustPut(t, b, key, v1, remote.PutOptions{IfNoneMatch: true})
			err := b.Put(ctx, key, bytes.NewReader(v2), int64(len(v2)), remote.PutOptions{IfNoneMatch: true})
			if !errors.Is(err, remote.ErrExists) {
				t.Fatalf("second Put(IfNoneMatch): got error %v, want ErrExists", err)
			}
			checkContent(t, b, key, v1)
			err = b.Put(ctx, key, bytes.NewReader(v2), int64(len(v2)), remote.PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"})
			if !errors.Is(err, remote.ErrPrecondition) {
				t.Fatalf("Put(IfMatch stale): got error %v, want ErrPrecondition", err)
			}
			info, err := b.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, b, key, v2, remote.PutOptions{IfMatch: info.ETag})
			checkContent(t, b, key, v2)
			mustPut(t, b, key, v1, remote.PutOptions{})
			checkContent(t, b, key, v1)
			if err := b.Delete(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			checkMissing(t, b, key)
		})
	}
}

// TestS3RetainConcurrent checks that concurrent Retains of one object
// all succeed. Which date is left is up to the server: versitygw v1.8.0
// checks and stores a retention in two steps, so a shorter one may land
// after a longer one has been set and read back (Retain repairs the
// cases it can see; about one run in a thousand still ends shorter).
func TestS3RetainConcurrent(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	b := newS3(t, srv.Config(newLockBucket(t, srv), "p"))
	const key = "packs/concurrent"
	mustPut(t, b, key, randomBytes(10), remote.PutOptions{})
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- b.Retain(t.Context(), key, base.Add(time.Duration(i)*time.Minute)) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Retain: %v", err)
		}
	}
	got, err := b.RetainedUntil(t.Context(), key)
	if err != nil {
		t.Fatalf("RetainedUntil: %v", err)
	}
	if last := base.Add((n - 1) * time.Minute); got.Before(base) || got.After(last) || got.Sub(base)%time.Minute != 0 {
		t.Fatalf("RetainedUntil: got %v, want one of the dates retained, %v to %v", got, base, last)
	} else if !got.Equal(last) {
		t.Logf("RetainedUntil: got %v, not the latest date %v (versitygw's race)", got, last)
	}
}

// TestS3RetainPast checks that a date in the past is refused and
// retains nothing.
func TestS3RetainPast(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	b := newS3(t, srv.Config(newLockBucket(t, srv), "p"))
	const key = "packs/past"
	mustPut(t, b, key, randomBytes(10), remote.PutOptions{})
	err := b.Retain(t.Context(), key, time.Now().Add(-time.Hour))
	t.Logf("Retain(an hour ago): %v", err)
	if err == nil {
		t.Fatalf("Retain(an hour ago): got nil error, want a refusal")
	}
	checkRetainedUntil(t, b, key, time.Time{})
}

func TestS3RetainMissing(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	b := newS3(t, srv.Config(newLockBucket(t, srv), "p"))
	ctx := t.Context()
	if got, err := b.RetainedUntil(ctx, "no/such/key"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("RetainedUntil of a missing key: got %v, %v; want ErrNotFound", got, err)
	}
	if err := b.Retain(ctx, "no/such/key", time.Now().Add(time.Hour)); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Retain of a missing key: got error %v, want ErrNotFound", err)
	}
	if err := b.Retain(ctx, "../bad", time.Now().Add(time.Hour)); !errors.Is(err, remote.ErrInvalidKey) {
		t.Errorf("Retain of an invalid key: got error %v, want ErrInvalidKey", err)
	}
	if _, err := b.RetainedUntil(ctx, "bad/"); !errors.Is(err, remote.ErrInvalidKey) {
		t.Errorf("RetainedUntil of an invalid key: got error %v, want ErrInvalidKey", err)
	}
}

// TestS3RetainNoObjectLock checks that a bucket without Object Lock
// retains nothing and says so.
func TestS3RetainNoObjectLock(t *testing.T) {
	t.Parallel()
	srv := s3srv.Get(t)
	b := newS3(t, srv.Config(srv.NewBucket(t), "p"))
	ctx := t.Context()
	const key = "packs/plain"
	data := randomBytes(100)
	mustPut(t, b, key, data, remote.PutOptions{})

	err := b.Retain(ctx, key, time.Now().Add(time.Hour))
	t.Logf("Retain: %v", err)
	if !errors.Is(err, remote.ErrNoObjectLock) {
		t.Fatalf("Retain: got error %v, want ErrNoObjectLock", err)
	}
	if !strings.Contains(err.Error(), b.Location()) {
		t.Errorf("Retain error %q: want the remote's location %s in it", err, b.Location())
	}
	checkRetainedUntil(t, b, key, time.Time{})
	if got, err := b.RetainedUntil(ctx, "no/such/key"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("RetainedUntil of a missing key: got %v, %v; want ErrNotFound", got, err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// TestRetainedUntilNotRetainer checks that nothing is retained on a
// backend that cannot retain.
func TestRetainedUntilNotRetainer(t *testing.T) {
	t.Parallel()
	b := remote.NewMem()
	mustPut(t, b, "a", []byte("x"), remote.PutOptions{})
	for _, key := range []string{"a", "missing"} {
		got, err := remote.RetainedUntil(t.Context(), b, key)
		if err != nil || !got.IsZero() {
			t.Errorf("RetainedUntil(%q): got %v, %v; want the zero time, nil", key, got, err)
		}
	}
	if _, ok := any(b).(remote.Retainer); ok {
		t.Errorf("Mem is a Retainer, want not")
	}
}
