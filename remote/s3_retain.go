package remote

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

// S3 retains objects with Object Lock in COMPLIANCE mode, which no one,
// the account root included, can shorten or lift before its date. Only a
// bucket created with Object Lock enabled can retain objects (S3 cannot
// enable it later without AWS support); CheckRetention says whether this
// one was.
//
// Retention is set on the object's current version (no version id is
// sent). What it then refuses depends on the server: see Retainer. On
// versitygw v1.8.0 over a plain directory, which keeps no versions,
// Delete of a retained object fails with ErrAccessDenied, and so does a
// Put over it, conditional or not: the lock is checked before If-None-Match.
var _ Retainer = (*S3)(nil)

// Error codes of the Object Lock requests that say "nothing is retained
// here" rather than that a request failed.
const (
	// The bucket has no Object Lock configuration (GetObjectLockConfig
	// on AWS S3, MinIO and versitygw, HTTP 404).
	codeNoLockConfig = "ObjectLockConfigurationNotFoundError"
	// The object has no retention (GetObjectRetention on a bucket with
	// Object Lock; HTTP 404 on AWS S3, 400 on versitygw).
	codeNoRetention = "NoSuchObjectLockConfiguration"
	// A retention request to a bucket without Object Lock ("Bucket is
	// missing Object Lock Configuration", HTTP 400). Retention requests
	// without a version id have no other cause for it.
	codeInvalidRequest = "InvalidRequest"
	// The server has no Object Lock at all.
	codeNotImplemented = "NotImplemented"
	// The current version is a delete marker (AWS S3, HTTP 405).
	codeMethodNotAllowed = "MethodNotAllowed"
)

// CheckRetention asks for the bucket's Object Lock configuration: nil if
// Object Lock is enabled, else an error wrapping ErrNoObjectLock, or
// ErrNoBucket, ErrAccessDenied… when the request fails.
func (s *S3) CheckRetention(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check retention %s: %w", s.Location(), err)
	}
	ctx, st := withStats(ctx)
	enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	if err != nil {
		switch errorCode(err) {
		case codeNoLockConfig:
			return s.noObjectLock()
		case codeNotImplemented:
			return s.noServerLock()
		}
		return fmt.Errorf("check retention %s: %w", s.Location(), s.translate(err, st))
	}
	if enabled != "Enabled" {
		// A configuration can exist without Object Lock being enabled.
		return s.noObjectLock()
	}
	return nil
}

// Retain sets a COMPLIANCE retention until until, rounded up to a whole
// second, after reading the current one: a COMPLIANCE retention reaching
// at least as far is left alone, as S3 would refuse to shorten it. A
// GOVERNANCE retention someone else set is replaced, which S3 allows only
// to callers permitted to bypass it; others get ErrAccessDenied.
//
// Every retention set is read back, so that a server accepting Object
// Lock requests without honouring them fails Retain rather than leave the
// caller believing. That also repairs a race of versitygw v1.8.0, which
// checks and stores a retention in two steps: of two concurrent Retains,
// the shorter may land last and shorten the other's. Reading back finds
// that, and the retention is set again, at most MaxRetries times in all;
// a shortening landing after the other Retain has read back goes unseen.
// A refusal is tried again only when another Retain changed the
// retention meanwhile.
func (s *S3) Retain(ctx context.Context, key string, until time.Time) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("retain %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("retain %s: %w", key, err)
	}
	until = ceilSecond(until)
	name := s.name(key)
	cur, err := s.retention(ctx, name)
	if err != nil {
		return fmt.Errorf("retain %s: %w", key, err)
	}
	if cur.covers(until) {
		return nil
	}
	mode := minio.Compliance
	opts := minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until}
	for attempt := 1; ; attempt++ {
		pctx, st := withStats(ctx)
		err := s.client.PutObjectRetention(pctx, s.bucket, name, opts)
		// Read back even a refusal: a concurrent Retain may have extended
		// the retention past until since it was read, and the server then
		// refuses ours as a shortening, but what was asked for holds.
		now, rerr := s.retention(ctx, name)
		if rerr == nil && now.covers(until) {
			return nil
		}
		// Try again while attempts remain if the retention was accepted
		// but did not hold, or refused while another Retain changed it.
		again := rerr == nil && (err == nil || !now.same(cur)) && attempt < s.maxRetries
		switch {
		case again:
			cur = now
		case err != nil:
			switch errorCode(err) {
			case codeNoLockConfig, codeInvalidRequest:
				err = s.noObjectLock()
			case codeNotImplemented:
				err = s.noServerLock()
			default:
				err = s.translate(err, st)
			}
			return fmt.Errorf("retain %s until %s: %w", key, until.Format(time.RFC3339), err)
		case rerr != nil:
			return fmt.Errorf("retain %s: read back: %w", key, rerr)
		default:
			return fmt.Errorf("retain %s until %s: the server accepted the retention, then reported %s", key, until.Format(time.RFC3339), now)
		}
	}
}

// RetainedUntil returns the retention date stored with the object, in
// either mode; the zero time when it has none or the bucket has no Object
// Lock.
func (s *S3) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	if err := ValidateKey(key); err != nil {
		return time.Time{}, fmt.Errorf("retained until %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("retained until %s: %w", key, err)
	}
	name := s.name(key)
	r, err := s.retention(ctx, name)
	if errors.Is(err, ErrNoObjectLock) {
		// Nothing in the bucket is retained, but a missing key must
		// still fail.
		_, err = s.stat(ctx, name)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("retained until %s: %w", key, err)
	}
	return r.until, nil
}

// s3Retention is an object's retention: its mode and date, both zero
// when it has none.
type s3Retention struct {
	mode  minio.RetentionMode
	until time.Time
}

func (r s3Retention) String() string {
	if r.mode == "" {
		return "no retention"
	}
	return fmt.Sprintf("%s retention until %s", r.mode, r.until.UTC().Format(time.RFC3339))
}

// same reports whether r and o are the same retention.
func (r s3Retention) same(o s3Retention) bool {
	return r.mode == o.mode && r.until.Equal(o.until)
}

// covers reports whether r keeps the object at least until until, in a
// mode no one can lift.
func (r s3Retention) covers(until time.Time) bool {
	return r.mode == minio.Compliance && !r.until.Before(until)
}

// retention reads the retention of object name. An object without one
// yields the zero s3Retention; a bucket without Object Lock, an error
// wrapping ErrNoObjectLock. Neither answer says whether the object
// exists, so the first is checked with a HEAD request.
func (s *S3) retention(ctx context.Context, name string) (s3Retention, error) {
	gctx, st := withStats(ctx)
	mode, until, err := s.client.GetObjectRetention(gctx, s.bucket, name, "")
	if err == nil {
		var r s3Retention
		if mode != nil && until != nil {
			r = s3Retention{mode: *mode, until: *until}
		}
		return r, nil
	}
	if unreadable(err) {
		return s.headRetention(ctx, name, err)
	}
	switch errorCode(err) {
	case codeNoRetention, codeMethodNotAllowed:
		// Not retained, or (405) hidden behind a delete marker: the HEAD
		// request tells a missing key from an existing one.
		if _, serr := s.stat(ctx, name); serr != nil {
			return s3Retention{}, serr
		}
		if errorCode(err) == codeNoRetention {
			return s3Retention{}, nil
		}
	case codeNoLockConfig, codeInvalidRequest:
		return s3Retention{}, s.noObjectLock()
	case codeNotImplemented:
		return s3Retention{}, s.noServerLock()
	}
	return s3Retention{}, s.translate(err, st)
}

// headRetention reads the retention of object name from the headers of
// a HEAD response, for a server whose answer to GetObjectRetention
// (getErr) minio-go cannot read: versitygw v1.8.0 names its root element
// ObjectLockRetention where S3 has Retention. S3 sends these headers only
// to callers allowed to read the retention; lacking them, the retention
// stays unknown, an error.
func (s *S3) headRetention(ctx context.Context, name string, getErr error) (s3Retention, error) {
	hctx, st := withStats(ctx)
	info, err := s.client.StatObject(hctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return s3Retention{}, s.translate(err, st)
	}
	mode := info.Metadata.Get("X-Amz-Object-Lock-Mode")
	date := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if mode == "" || date == "" {
		return s3Retention{}, fmt.Errorf("read retention: unreadable answer (%w) and none in the object's headers", getErr)
	}
	until, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return s3Retention{}, fmt.Errorf("read retention: bad x-amz-object-lock-retain-until-date %q", date)
	}
	return s3Retention{mode: minio.RetentionMode(mode), until: until}, nil
}

// unreadable reports whether err says that a response body was not the
// XML document expected.
func unreadable(err error) bool {
	var ue xml.UnmarshalError
	var se *xml.SyntaxError
	return errors.As(err, &ue) || errors.As(err, &se)
}

// noObjectLock returns the error of a bucket without Object Lock.
func (s *S3) noObjectLock() error {
	return &noObjectLockError{fmt.Sprintf("%s: bucket has no Object Lock (create the bucket with Object Lock enabled to retain objects)", s.Location())}
}

// noServerLock returns the error of a server without Object Lock.
func (s *S3) noServerLock() error {
	return &noObjectLockError{fmt.Sprintf("%s: the server at %s does not support Object Lock", s.Location(), s.endpoint)}
}

// errorCode returns the S3 error code of a failed request, "" for an
// error that is not the server's answer.
func errorCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// ceilSecond returns t in UTC, rounded up to a whole second: the
// precision of the dates S3 stores.
func ceilSecond(t time.Time) time.Time {
	c := t.Truncate(time.Second)
	if c.Before(t) {
		c = c.Add(time.Second)
	}
	return c.UTC()
}
