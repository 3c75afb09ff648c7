package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"

	"github.com/cas-ml/cas/clock"
)

// Errors an S3 backend adds to the ones of every Backend. Check returns
// them for a remote that cannot work at all; any other call may too.
var (
	// ErrNoBucket: the bucket does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrAccessDenied: the credentials are valid but lack permission for
	// the operation (reading, writing or listing the bucket).
	ErrAccessDenied = errors.New("access denied")
	// ErrBadCredentials: the server rejected the credentials (unknown
	// access key, wrong secret, expired session token), or none were found.
	ErrBadCredentials = errors.New("credentials rejected")
	// ErrUnreachable: no connection to the endpoint could be made
	// (connection refused, unknown host, dial timeout).
	ErrUnreachable = errors.New("endpoint unreachable")
)

// NoWriteError is a write the server refused for lack of permission: the
// credentials may read the bucket but not write it. It wraps
// ErrAccessDenied.
type NoWriteError struct {
	Location string // "s3://bucket/prefix"
	Key      string
	Err      error
}

func (e *NoWriteError) Error() string {
	return fmt.Sprintf("no write permission on %s (writing %s was refused)", e.Location, e.Key)
}

func (e *NoWriteError) Unwrap() error { return e.Err }

// Defaults of S3Config.
const (
	DefaultS3MaxRetries = 6
	DefaultS3PartSize   = 16 << 20
	DefaultS3Timeout    = time.Minute
	// DefaultS3FirstAnswer is S3Config.FirstAnswer's default.
	DefaultS3FirstAnswer = 10 * time.Second

	minS3PartSize = 5 << 20 // S3's smallest part but the last
	maxS3PartSize = 5 << 30
	maxS3Parts    = 10000
)

// S3Config says where an S3 backend keeps its objects and how it talks to
// the server.
type S3Config struct {
	// Endpoint is the server's URL, "https://s3.eu-west-1.amazonaws.com"
	// or "http://127.0.0.1:7070"; only scheme, host and port. Empty means
	// AWS S3 ("https://s3.amazonaws.com").
	Endpoint string
	// Bucket must exist; Check says whether it does.
	Bucket string
	// Prefix, if not empty, is prepended to every key with a "/": key
	// "packs/ab" is object Prefix+"/packs/ab". Slashes around it are
	// ignored.
	Prefix string
	// Region is the bucket's region; empty makes the backend ask the
	// server for it (GET ?location) before its first request, once
	// (BucketRegion returns the answer, to be recorded).
	Region string
	// AccessKey, SecretKey and SessionToken are static credentials. When
	// AccessKey is empty they come, in this order, from the environment
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or the
	// shared credentials and config files (~/.aws/credentials,
	// ~/.aws/config, profile AWS_PROFILE or "default"); with none found,
	// requests go unsigned, which only public buckets accept.
	AccessKey, SecretKey, SessionToken string
	// MaxRetries bounds the attempts of every HTTP request: a request that
	// fails with a 5xx status, a throttling code (503 SlowDown, 429), a
	// timeout or a broken connection is retried with exponential backoff
	// and full jitter (200 ms doubling to at most 1 s between attempts;
	// minio-go's own retry loop, given this bound) until it has been tried
	// MaxRetries times. Two more things are retried, each at most
	// MaxRetries times in all: an upload the server refuses because its
	// checksum does not match (BadDigest), and a download broken mid-body,
	// which resumes where it stopped. Each of those requests keeps its own
	// bound, so no call makes more than MaxRetries² attempts of one
	// request. Then the call fails with an error naming the key and the
	// attempts. 0 means DefaultS3MaxRetries; 1 disables retries.
	MaxRetries int
	// PartSize is the size of the parts of multipart uploads, which every
	// object larger than it gets. Puts of objects of unknown size buffer
	// one part, and can store at most 10,000 parts. 0 means
	// DefaultS3PartSize; at least 5 MiB.
	PartSize int64
	// Timeout is how long a connection may sit without a byte moving in
	// either direction, waiting for a response included, before the
	// request is abandoned (and retried). 0 means DefaultS3Timeout.
	Timeout time.Duration
	// FirstAnswer is how long a connection may sit idle before the
	// endpoint has answered anything: then requests fail at once, as
	// ErrUnreachable, rather than wait out every retry (a stopped server,
	// a network that drops packets). 0 means DefaultS3FirstAnswer.
	FirstAnswer time.Duration
	// Clock times the waits between retries (nil: the wall clock).
	Clock clock.Clock
}

// S3 is a Backend storing objects in a bucket of an S3-compatible service
// (AWS S3, MinIO, Ceph RGW, versitygw…) through minio-go. Keys map to
// object names under the configured prefix; vendor errors are translated
// into this package's sentinels, and no error message carries credentials.
//
// Conditional Puts send If-None-Match: * or If-Match: "etag" with the
// request that creates the object: the PutObject, or, for an object
// uploaded in parts, the CompleteMultipartUpload (minio-go's own
// multipart upload drops them there, so S3 uploads parts itself). The
// server checks them atomically (AWS S3 since 2024, MinIO, versitygw
// v1.8.0, verified by the tests); a server ignoring them would let
// concurrent writers overwrite each other. ETags are the server's (MD5
// of the content for single uploads on most servers), so rewriting the
// same bytes keeps the ETag.
//
// Every upload request carries a CRC32C of its body (a trailing
// x-amz-checksum-crc32c for single uploads, a header per part) that the
// server verifies before storing anything, so a body corrupted on the way
// is refused (BadDigest) and sent again; after the upload Put checks the
// stored size. The payload itself is not signed (UNSIGNED-PAYLOAD): over
// plain http an active attacker could replace data, so use https for
// anything but a local server; callers check content digests on reads.
//
// Retries are bounded by S3Config.MaxRetries. When a write's fate is
// unknown (the connection broke after the body was sent) and its retry
// is refused because the key now exists or has changed, Put recognises
// its own write by a random put id stored in the object's metadata
// (x-amz-meta-cas-put-id) and reports success; if another writer has
// replaced the object in between, Put reports the refusal although its
// write happened.
//
// Objects are never modified in place. Get reads one version: a resumed
// download asks for the same ETag and fails rather than mix versions.
// Delete cannot tell a missing key from a deleted one in one request
// (S3 answers 204 to both), so it Stats first: of two concurrent Deletes
// of one key both may succeed.
//
// HEAD requests (Stat, and Delete's check) get no error document, so a
// refusal of them reads as ErrAccessDenied even for wrong credentials,
// and versitygw answers 404 to a HEAD with an unknown access key, which
// reads as ErrNotFound. Check, which lists, tells these cases apart:
// call it before relying on a remote.
type S3 struct {
	client     *minio.Client
	creds      *credentials.Credentials
	endpoint   string // for messages: scheme://host[:port]
	region     string // as configured; "" asks the server
	bucket     string
	prefix     string // without slashes around it; "" for the bucket root
	maxRetries int
	partSize   int64
	clock      clock.Clock
}

var _ Backend = (*S3)(nil)

// NewS3 returns an S3 backend for cfg. It checks the configuration but
// does not contact the server: call Check for that.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	_ = ctx // reserved: the credential chain may one day need it
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "https://s3.amazonaws.com"
	}
	u, err := url.Parse(endpoint)
	if err != nil && !strings.Contains(endpoint, "@") {
		return nil, fmt.Errorf("s3 endpoint %q: not a URL", endpoint)
	}
	if err != nil || u.User != nil {
		// Never echo the URL: it holds credentials.
		return nil, errors.New("s3 endpoint: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("s3 endpoint %q: want http://host[:port] or https://host[:port]", endpoint)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("s3 endpoint %q: want only scheme, host and port, without a path", endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket given")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 prefix %q: %w", cfg.Prefix, err)
		}
	}
	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = DefaultS3MaxRetries
	}
	partSize := cfg.PartSize
	switch {
	case partSize == 0:
		partSize = DefaultS3PartSize
	case partSize < minS3PartSize || partSize > maxS3PartSize:
		return nil, fmt.Errorf("s3 part size %d: want 5 MiB to 5 GiB", partSize)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultS3Timeout
	}

	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
	}
	secure := u.Scheme == "https"
	first := cfg.FirstAnswer
	if first <= 0 {
		first = DefaultS3FirstAnswer
	}
	transport, err := newS3Transport(secure, timeout, first)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:           creds,
		Secure:          secure,
		Transport:       transport,
		Region:          cfg.Region,
		TrailingHeaders: true, // trailing checksums of single-request uploads
		MaxRetries:      retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", u.Host, err)
	}
	return &S3{
		client:     client,
		creds:      creds,
		endpoint:   u.Scheme + "://" + u.Host,
		region:     cfg.Region,
		bucket:     cfg.Bucket,
		prefix:     prefix,
		maxRetries: retries,
		partSize:   partSize,
		clock:      clock.OrReal(cfg.Clock),
	}, nil
}

// Location returns "s3://bucket/prefix" ("s3://bucket" without a prefix).
func (s *S3) Location() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// name returns the object name of key.
func (s *S3) name(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// Check makes one cheap request (a listing of at most one key under the
// prefix) and returns nil if the bucket exists and the credentials may
// list it, or a one-line error wrapping ErrNoBucket, ErrBadCredentials,
// ErrAccessDenied or ErrUnreachable otherwise.
func (s *S3) Check(ctx context.Context) error {
	opts := minio.ListObjectsOptions{Prefix: s.listPrefix(""), MaxKeys: 1, Recursive: true, FetchOwner: new(false)}
	ctx, st := withStats(ctx)
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("check %s at %s: %w", s.Location(), s.endpoint, s.noteAnonymous(s.translate(obj.Err, st)))
		}
		break
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check %s: %w", s.Location(), err)
	}
	return nil
}

// Explain returns err, an error of a request to s, with what Check would
// say about it when it is one Check looks for (no bucket, no access, bad
// credentials, no connection): the endpoint it could not use and, where
// unsigned requests were refused, that no credentials were found. Other
// errors come back as they are. A command that skips Check, because its
// first request tells as much, passes that request's error through it.
func (s *S3) Explain(err error) error {
	if !errors.Is(err, ErrNoBucket) && !errors.Is(err, ErrAccessDenied) &&
		!errors.Is(err, ErrBadCredentials) && !errors.Is(err, ErrUnreachable) {
		return err
	}
	var se *s3Error
	if errors.As(err, &se) {
		err = se // the request's own words, without those of its callers
	}
	return fmt.Errorf("%s at %s: %w", s.Location(), s.endpoint, s.noteAnonymous(err))
}

// DefaultS3Region is the region of a bucket whose server names none
// (an empty location): AWS S3's first region, as minio-go takes it.
const DefaultS3Region = "us-east-1"

// BucketRegion returns the bucket's region: the configured one, else the
// one the backend uses, asking the server (GET ?location) unless an
// earlier request has asked already: the answer is kept for the
// backend's life, a failure is not. An empty answer is DefaultS3Region.
// Recorded as S3Config.Region, the region spares every later backend
// that question.
//
// A location request refused for lack of permission is read as
// DefaultS3Region (minio-go's reading), which minio-go corrects when the
// server refuses a later signed request for its region; so the answer is
// sure once a signed request to the bucket has been answered, and a
// guess before. Unsigned requests (no credentials found) tell nothing: then
// BucketRegion asks nothing and returns an error wrapping
// ErrBadCredentials. Other failures are translated like those of every
// request (ErrNoBucket, ErrUnreachable…).
func (s *S3) BucketRegion(ctx context.Context) (string, error) {
	if s.region != "" {
		return s.region, nil
	}
	if s.anonymous() {
		return "", fmt.Errorf("region of %s: %w: no credentials found", s.Location(), ErrBadCredentials)
	}
	ctx, st := withStats(ctx)
	region, err := s.client.GetBucketLocation(ctx, s.bucket)
	if err != nil {
		return "", fmt.Errorf("region of %s: %w", s.Location(), s.translate(err, st))
	}
	if region == "" {
		// minio-go reads an empty location so already; an empty region
		// recorded would make every backend ask again.
		region = DefaultS3Region
	}
	return region, nil
}

// noteAnonymous turns a refusal of unsigned requests into an error that
// says no credentials were found.
func (s *S3) noteAnonymous(err error) error {
	if errors.Is(err, ErrAccessDenied) && s.anonymous() {
		return fmt.Errorf("%w: no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)", ErrBadCredentials)
	}
	return err
}

// anonymous reports whether no credentials were found, so that requests
// go unsigned.
func (s *S3) anonymous() bool {
	v, err := s.creds.GetWithContext(nil)
	return err == nil && v.SignerType.IsAnonymous()
}

// putIDKey is the user metadata naming the Put that wrote an object.
const putIDKey = "Cas-Put-Id"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// s3PartWorkers is how many parts of one multipart upload are in flight
// (and buffered in memory) at once.
const s3PartWorkers = 4

// Put uploads r: in one request when it fits in a part, else as a
// multipart upload. It checks r's length before the last byte leaves, so
// a short or long reader never stores anything, and verifies the stored
// size afterwards. A request the server refuses because its checksum
// does not match (the body was corrupted on the way) is sent again, at
// most MaxRetries times.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if opts.IfNoneMatch && opts.IfMatch != "" {
		return fmt.Errorf("put %s: both IfNoneMatch and IfMatch set", key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	body, n, err := s.putBody(ctx, r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	name, id := s.name(key), newPutID()
	ctx, st := withStats(ctx)
	var stored int64
	if n >= 0 && n <= s.partSize {
		stored, err = s.putSingle(ctx, name, body.(io.ReadSeeker), n, id, opts)
	} else {
		stored, err = s.putMultipart(ctx, name, body, n, id, opts)
	}
	if err != nil {
		// A retry refused because an earlier attempt of this very Put
		// succeeded is a success.
		if !st.ambiguous.Load() || !s.landed(ctx, name, id) {
			err = s.translate(err, st)
			if opts.IfNoneMatch && errors.Is(err, ErrPrecondition) {
				err = ErrExists
			}
			// Some servers (versitygw) check Object Lock before the
			// condition: a retained object is refused, yet it exists.
			if opts.IfNoneMatch && errors.Is(err, ErrAccessDenied) {
				if _, serr := s.stat(ctx, name); serr == nil {
					err = ErrExists
				}
			}
			if errors.Is(err, ErrAccessDenied) {
				return &NoWriteError{Location: s.Location(), Key: key, Err: err}
			}
			return fmt.Errorf("put %s: %w", key, err)
		}
		if n >= 0 {
			stored = n
		}
	}
	if err := s.checkStored(ctx, name, id, stored); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// objectOptions returns the options of a new object written by the Put
// with id, and its conditions.
func objectOptions(id string, opts PutOptions) minio.PutObjectOptions {
	po := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{putIDKey: id},
	}
	setConditions(&po, opts)
	return po
}

func setConditions(po *minio.PutObjectOptions, opts PutOptions) {
	switch {
	case opts.IfNoneMatch:
		po.SetMatchETagExcept("*")
	case opts.IfMatch != "":
		po.SetMatchETag(opts.IfMatch)
	}
}

// putSingle stores body, n bytes, in one request with a trailing CRC32C.
// It returns the size it stored.
func (s *S3) putSingle(ctx context.Context, name string, body io.ReadSeeker, n int64, id string, opts PutOptions) (int64, error) {
	po := objectOptions(id, opts)
	po.Checksum = minio.ChecksumCRC32C
	po.DisableContentSha256 = true // unsigned payload, checked by the checksum
	po.DisableMultipart = true
	// minio-go retries a failed request by seeking body back; the
	// transport (countingTransport) returns a failed attempt only once
	// net/http has let go of its body.
	err := s.retryCorrupt(ctx, func() error {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := s.client.PutObject(ctx, s.bucket, name, body, n, po)
		return err
	})
	return n, err
}

// retryCorrupt runs put until the server stops refusing its body as
// corrupted, at most MaxRetries times.
func (s *S3) retryCorrupt(ctx context.Context, put func() error) error {
	for attempt := 1; ; attempt++ {
		err := put()
		if err == nil || !corruptUpload(err) || attempt >= s.maxRetries {
			return err
		}
		if err := s.clock.Sleep(ctx, backoff(attempt-1)); err != nil {
			return err
		}
	}
}

// corruptUpload reports whether the server refused a request because the
// body did not match its checksum.
func corruptUpload(err error) bool {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	switch er.Code {
	case "BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "IncompleteBody":
		return true
	}
	return false
}

// putMultipart stores src, of size bytes or of unknown size (-1), as a
// multipart upload: parts of partSize bytes, each buffered, sent with its
// CRC32C and retried on its own, s3PartWorkers at a time. The conditions
// go with the request completing the upload, where S3 checks them. A
// failed upload is aborted. It returns the size it stored.
func (s *S3) putMultipart(ctx context.Context, name string, src io.Reader, size int64, id string, opts PutOptions) (stored int64, err error) {
	core := minio.Core{Client: s.client}
	create := objectOptions(id, PutOptions{})
	create.UserMetadata["X-Amz-Checksum-Algorithm"] = "CRC32C"
	uploadID, err := core.NewMultipartUpload(ctx, s.bucket, name, create)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_ = core.AbortMultipartUpload(actx, s.bucket, name, uploadID) // best effort: a leftover upload is no object
			cancel()
		}
	}()

	partSize := s.partSizeFor(size)
	type part struct {
		num int
		buf []byte
	}
	free := make(chan []byte, s3PartWorkers)
	for range s3PartWorkers {
		free <- nil // allocated on first use
	}
	jobs := make(chan part)
	var (
		mu    sync.Mutex
		parts []minio.CompletePart
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for num := 1; ; num++ {
			var buf []byte
			select {
			case buf = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			if buf == nil {
				buf = make([]byte, partSize)
			}
			n, err := io.ReadFull(src, buf)
			if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
				return err
			}
			if n == 0 && num > 1 {
				return nil
			}
			if num > maxS3Parts {
				return fmt.Errorf("object larger than %d parts of %d bytes", maxS3Parts, partSize)
			}
			stored += int64(n)
			select {
			case jobs <- part{num, buf[:n]}:
			case <-gctx.Done():
				return gctx.Err()
			}
			if n < len(buf) {
				return nil
			}
		}
	})
	for range s3PartWorkers {
		g.Go(func() error {
			for p := range jobs {
				sum := crc32.Checksum(p.buf, castagnoli)
				crc := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
				popts := minio.PutObjectPartOptions{
					CustomHeader:         http.Header{"X-Amz-Checksum-Crc32c": {crc}},
					DisableContentSha256: true,
				}
				var op minio.ObjectPart
				err := s.retryCorrupt(gctx, func() error {
					var err error
					op, err = core.PutObjectPart(gctx, s.bucket, name, uploadID, p.num, bytes.NewReader(p.buf), int64(len(p.buf)), popts)
					return err
				})
				if err != nil {
					return err
				}
				mu.Lock()
				parts = append(parts, minio.CompletePart{PartNumber: p.num, ETag: op.ETag, ChecksumCRC32C: crc})
				mu.Unlock()
				free <- p.buf[:cap(p.buf)]
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	slices.SortFunc(parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	var complete minio.PutObjectOptions
	setConditions(&complete, opts)
	_, err = core.CompleteMultipartUpload(ctx, s.bucket, name, uploadID, parts, complete)
	return stored, err
}

// partSizeFor returns the part size for an object of size n: the
// configured one, or larger when n would need more than 10,000 parts.
func (s *S3) partSizeFor(n int64) int64 {
	ps := s.partSize
	if n > ps*maxS3Parts {
		ps = (n + maxS3Parts - 1) / maxS3Parts
		ps = (ps + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
	}
	return ps
}

// putBody returns a reader yielding exactly the bytes to store and their
// count (-1 when unknown and larger than a part). It fails, before any
// request, when r is seekable or fits in a part and does not hold exactly
// size bytes; a larger stream gets a reader that fails before its last
// byte if the length is wrong, which aborts the upload.
//
// Single-request bodies are always seekable, so that the request can be
// retried; multipart uploads buffer or section each part themselves.
func (s *S3) putBody(ctx context.Context, r io.Reader, size int64) (io.Reader, int64, error) {
	if size >= 0 {
		if ra, ok := r.(io.ReaderAt); ok {
			if sk, ok := r.(io.Seeker); ok {
				if body, ok, err := sectionBody(ra, sk, size); ok || err != nil {
					return body, size, err
				}
			}
		}
	}
	src := io.Reader(ctxReader{ctx, r})
	switch {
	case size < 0:
		// Buffer up to one part: most objects of unknown size are small,
		// and one request beats three.
		buf, err := io.ReadAll(io.LimitReader(src, s.partSize+1))
		if err != nil {
			return nil, 0, err
		}
		if int64(len(buf)) <= s.partSize {
			return bytes.NewReader(buf), int64(len(buf)), nil
		}
		return io.MultiReader(bytes.NewReader(buf), src), -1, nil
	case size <= s.partSize:
		buf := make([]byte, size)
		if _, err := io.ReadFull(src, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = errShortBody
			}
			return nil, 0, err
		}
		if extra, err := src.Read(make([]byte, 1)); extra > 0 {
			return nil, 0, errLongBody
		} else if err != nil && err != io.EOF {
			return nil, 0, err
		}
		return bytes.NewReader(buf), size, nil
	default:
		return &exactReader{r: src, left: size}, size, nil
	}
}

var (
	errShortBody = errors.New("reader yielded fewer bytes than the size given")
	errLongBody  = errors.New("reader yielded more bytes than the size given")
)

// sectionBody returns a section of size bytes of ra from its current
// offset, after checking that exactly that many bytes are there. ok is
// false when ra cannot be read at offsets; r is then streamed instead.
func sectionBody(ra io.ReaderAt, sk io.Seeker, size int64) (body io.Reader, ok bool, err error) {
	off, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false, nil
	}
	var b [1]byte
	if size > 0 {
		if n, err := ra.ReadAt(b[:], off+size-1); n != 1 {
			if err == io.EOF {
				return nil, true, errShortBody
			}
			return nil, false, nil
		}
	}
	if n, _ := ra.ReadAt(b[:], off+size); n > 0 {
		return nil, true, errLongBody
	}
	return io.NewSectionReader(ra, off, size), true, nil
}

// exactReader passes on exactly left bytes of r. It fails when r ends
// early, and, before handing out the last byte, when r holds more.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		var b [1]byte
		if m, _ := io.ReadFull(e.r, b[:]); m > 0 {
			e.err = errLongBody
			return 0, e.err
		}
		return n, nil
	case err == io.EOF:
		e.err = errShortBody
		return n, e.err
	}
	return n, err
}

// newPutID returns a random id naming one Put.
func newPutID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// landed reports whether the current object name was written by the Put
// with id: what a refused retry of a write that in fact succeeded sees.
func (s *S3) landed(ctx context.Context, name, id string) bool {
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	return err == nil && info.Metadata.Get("X-Amz-Meta-"+putIDKey) == id
}

// checkStored verifies that the object the Put with id stored has size
// bytes. If another writer has replaced it since, there is nothing left
// to check. A wrong size (which the checksum makes all but impossible)
// deletes the object, so that no one reads it, and fails.
func (s *S3) checkStored(ctx context.Context, name, id string, size int64) error {
	ctx, st := withStats(ctx)
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		if err := s.translate(err, st); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("check stored size: %w", err)
		}
		return nil // deleted since: not ours to check
	}
	if info.Metadata.Get("X-Amz-Meta-"+putIDKey) != id || info.Size == size {
		return nil
	}
	_ = s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, name, minio.RemoveObjectOptions{}) // the error below says more
	return fmt.Errorf("server stored %d bytes, want %d; removed the object", info.Size, size)
}

// Get returns a reader over a byte range of the object. Reading fails,
// never returns short data: a body broken mid-way is resumed with a
// ranged request for the same ETag, up to MaxRetries requests in all,
// and then fails with an error wrapping io.ErrUnexpectedEOF.
func (s *S3) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	name := s.name(key)
	if length == 0 {
		// Nothing to read, but a missing key must still fail.
		if _, err := s.stat(ctx, name); err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	end := int64(-1)
	if length > 0 {
		end = offset + length
	}
	rg, err := s.getRange(ctx, name, offset, end, "")
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return &s3Body{s: s, ctx: ctx, key: key, name: name, etag: rg.etag, body: rg.body, pos: offset, end: offset + rg.n}, nil
}

// byteRange is the answer to a ranged GET: n bytes from the requested
// offset of the version etag, in body (nil when n is 0).
type byteRange struct {
	body io.ReadCloser
	n    int64
	etag string
}

// getRange asks for bytes [from, to) of the object, to < 0 meaning to the
// end, and, with etag set, only of that version. A range starting at or
// past the end yields no bytes.
func (s *S3) getRange(ctx context.Context, name string, from, to int64, etag string) (byteRange, error) {
	var opts minio.GetObjectOptions
	if to < 0 {
		opts.Set("Range", fmt.Sprintf("bytes=%d-", from))
	} else {
		opts.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to-1))
	}
	if etag != "" {
		_ = opts.SetMatchETag(etag) // fails only for an empty etag
	}
	ctx, st := withStats(ctx)
	body, info, hdr, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, name, opts)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.StatusCode == http.StatusRequestedRangeNotSatisfiable || er.Code == "InvalidRange") {
			// The object exists and ends at or before from.
			return byteRange{etag: etag}, nil
		}
		return byteRange{}, s.translate(err, st)
	}
	rg := byteRange{body: body, etag: info.ETag}
	if cr := hdr.Get("Content-Range"); cr != "" {
		start, last, total, ok := parseContentRange(cr)
		if !ok || start != from {
			body.Close()
			return byteRange{}, fmt.Errorf("server answered range %q to a request from byte %d", cr, from)
		}
		rg.n = last - start + 1
		if to >= 0 && total >= 0 && min(to, total)-from != rg.n {
			body.Close()
			return byteRange{}, fmt.Errorf("server answered range %q to a request for bytes %d-%d", cr, from, to-1)
		}
	} else {
		// A server ignoring Range sends the whole object.
		if from != 0 {
			body.Close()
			return byteRange{}, errors.New("server ignored the Range header")
		}
		rg.n = info.Size
		if to >= 0 && to < rg.n {
			rg.n = to
		}
	}
	if rg.n < 0 {
		body.Close()
		return byteRange{}, errors.New("server sent no length")
	}
	return rg, nil
}

// parseContentRange parses "bytes START-LAST/TOTAL"; total is -1 for "*".
func parseContentRange(s string) (start, last, total int64, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	ok = err1 == nil && err2 == nil && err3 == nil && start >= 0 && last >= start
	return start, last, total, ok
}

// Stat returns the object's size and ETag.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	info, err := s.stat(ctx, s.name(key))
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	info.Key = key
	return info, nil
}

func (s *S3) stat(ctx context.Context, name string) (ObjectInfo, error) {
	ctx, st := withStats(ctx)
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.translate(err, st)
	}
	return ObjectInfo{Size: info.Size, ETag: info.ETag, ModTime: info.LastModified}, nil
}

// listPrefix returns the object-name prefix of a key prefix.
func (s *S3) listPrefix(prefix string) string {
	if s.prefix == "" {
		return prefix
	}
	return s.prefix + "/" + prefix
}

// List pages through ListObjectsV2, whose order is lexical by bytes.
// Names under the prefix that are not valid keys (directory markers
// ending in "/" that other tools create) are skipped.
func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	root := s.listPrefix("")
	opts := minio.ListObjectsOptions{Prefix: s.listPrefix(prefix), Recursive: true, FetchOwner: new(false)}
	ctx, st := withStats(ctx)
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list %s: %w", prefix, s.translate(obj.Err, st))
		}
		key, ok := strings.CutPrefix(obj.Key, root)
		if !ok || ValidateKey(key) != nil {
			continue
		}
		if err := fn(ObjectInfo{Key: key, Size: obj.Size, ETag: obj.ETag, ModTime: obj.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// Delete removes key after checking that it exists.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	name := s.name(key)
	if _, err := s.stat(ctx, name); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	ctx, st := withStats(ctx)
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", key, s.translate(err, st))
	}
	return nil
}

// translate turns a minio-go or network error into one of this package:
// a sentinel where one fits, else an s3Error with the server's code. The
// server's message is kept; request URLs, which name the endpoint but
// might carry signed query strings, are not.
func (s *S3) translate(err error, st *opStats) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if errors.Is(err, context.Canceled) {
			return context.Canceled
		}
		return context.DeadlineExceeded
	}
	attempts := st.maxTries()
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		e := &s3Error{code: er.Code, status: er.StatusCode, msg: er.Message, attempts: attempts}
		if strings.HasPrefix(er.Code, strconv.Itoa(er.StatusCode)+" ") {
			// minio-go's stand-in code for a response without an error
			// document (HEAD): the status line.
			e.code, e.msg = "", http.StatusText(er.StatusCode)
		}
		switch er.Code {
		case "NoSuchKey", "NoSuchVersion":
			return ErrNotFound
		case "PreconditionFailed":
			return ErrPrecondition
		case "NoSuchBucket":
			e.kind = ErrNoBucket
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
			"TokenRefreshRequired", "InvalidSecurity", "MissingSecurityHeader",
			"XAdminUserNotFound": // versitygw: unknown access key
			e.kind = ErrBadCredentials
		case "AccessDenied", "AllAccessDisabled", "AccountProblem":
			e.kind = ErrAccessDenied
		case "XMinioInvalidObjectName", "KeyTooLongError":
			e.kind = ErrInvalidKey
		default:
			switch er.StatusCode {
			case http.StatusNotFound:
				return ErrNotFound
			case http.StatusPreconditionFailed:
				return ErrPrecondition
			case http.StatusForbidden:
				e.kind = ErrAccessDenied
			}
		}
		return e
	}
	var ue *url.Error
	var neterr net.Error
	if errors.As(err, &ue) || errors.As(err, &neterr) || errors.Is(err, io.ErrUnexpectedEOF) {
		e := &s3Error{msg: networkMessage(err), attempts: attempts}
		if unreachable(err) {
			e.kind = ErrUnreachable
		}
		return e
	}
	return err // not from the server or the network: a reader's error
}

// unreachable reports whether err means that no connection could be made.
func unreachable(err error) bool {
	var dns *net.DNSError
	var op *net.OpError
	return errors.As(err, &dns) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.As(err, &op) && op.Op == "dial"
}

// networkMessage returns err's text without the request URL that
// net/http puts in front of it.
func networkMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "Connection closed by foreign host") {
		// minio-go's rewording of an EOF, with the URL in it.
		msg = "connection closed by the server"
	}
	return msg
}

// s3Error is a failed request that is not simply "not found" or "a
// precondition failed": what it means (a sentinel, if one fits), the S3
// error code and HTTP status, the server's message, and the attempts made.
type s3Error struct {
	kind     error // ErrNoBucket, ErrBadCredentials, …; nil if none fits
	code     string
	status   int
	msg      string
	attempts int
}

func (e *s3Error) Error() string {
	var b strings.Builder
	switch {
	case e.kind != nil:
		b.WriteString(e.kind.Error())
	case e.status != 0:
		b.WriteString("S3 request failed")
	default:
		b.WriteString("network error")
	}
	var detail []string
	if e.code != "" {
		detail = append(detail, e.code)
	}
	if e.status != 0 {
		detail = append(detail, fmt.Sprintf("HTTP %d", e.status))
	}
	d := strings.Join(detail, ", ")
	if msg := oneLine(e.msg, 200); msg != "" {
		if d != "" {
			d += ": "
		}
		d += msg
	}
	if d != "" {
		b.WriteString(" (" + d + ")")
	}
	if e.attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.attempts)
	}
	return b.String()
}

func (e *s3Error) Unwrap() error { return e.kind }

// oneLine collapses s to one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
