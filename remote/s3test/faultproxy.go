package s3test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/cas-ml/cas/clock"
)

// FaultProxy is an HTTP reverse proxy on 127.0.0.1 that forwards requests
// to a server and breaks the ones its rules pick: it answers an error
// status, delays, drops the connection while the request body arrives,
// flips a byte of a request or response body, cuts a response short, or
// drops the conditions of a write.
// Point a client's endpoint at URL instead of the server's; requests keep
// their Host header, so signed S3 requests stay valid.
//
// Each rule breaks a bounded number of requests, so a client that retries
// eventually gets through (or, with more breaks than it retries, fails).
type FaultProxy struct {
	// URL is the proxy's address, "http://127.0.0.1:PORT".
	URL string

	target   *url.URL
	srv      *httptest.Server
	client   *http.Client
	mu       sync.Mutex
	rules    []*Rule
	seen     []Seen
	requests atomic.Int64
}

// Seen records a request the proxy received.
type Seen struct {
	Method string
	Path   string // URL path, "/bucket/key"
	Query  url.Values
	Header http.Header
}

// Rule breaks up to Times requests that Match picks, with Fault.
type Rule struct {
	// Match picks the requests to break; nil picks every request.
	Match func(*http.Request) bool
	// Times is how many requests the rule breaks; at least 1.
	Times int
	// Fault is what happens to them.
	Fault Fault

	hits atomic.Int64
}

// Hits returns how many requests the rule has broken so far.
func (r *Rule) Hits() int { return int(r.hits.Load()) }

// take reports whether the rule breaks req, counting it if so.
func (r *Rule) take(req *http.Request) bool {
	if r.Match != nil && !r.Match(req) {
		return false
	}
	for {
		n := r.hits.Load()
		if n >= int64(max(r.Times, 1)) {
			return false
		}
		if r.hits.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Match returns a matcher of requests with the method (any if "") whose
// URL path contains pathPart (any if "").
func Match(method, pathPart string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && strings.Contains(r.URL.Path, pathPart)
	}
}

// Fault is one way to break a request; make it with the functions below.
type Fault struct {
	kind   faultKind
	n      int64
	status int
	code   string
	delay  time.Duration
	secret string
}

type faultKind int

const (
	faultNone faultKind = iota
	faultStatus
	faultDelay
	faultDropRequest
	faultDropResponse
	faultFlipRequest
	faultFlipResponse
	faultCutResponse
	faultShortResponse
	faultStripConditions
)

// Status answers with the HTTP status and an S3 error document with the
// code ("SlowDown", "InternalError"), after reading the request body,
// without forwarding the request.
func Status(status int, code string) Fault {
	return Fault{kind: faultStatus, status: status, code: code}
}

// Delay waits d before forwarding the request: a slow server.
func Delay(d time.Duration) Fault { return Fault{kind: faultDelay, delay: d} }

// DropRequest reads n bytes of the request body, then closes the
// connection without answering or forwarding anything: a connection
// dropped during an upload.
func DropRequest(n int64) Fault { return Fault{kind: faultDropRequest, n: n} }

// DropResponse forwards the request, so that the server acts on it, then
// closes the connection without passing on the answer: a write whose
// outcome the client cannot know.
func DropResponse() Fault { return Fault{kind: faultDropResponse} }

// FlipRequestByte inverts the request body's byte at offset off on its
// way to the server: corruption during an upload.
func FlipRequestByte(off int64) Fault { return Fault{kind: faultFlipRequest, n: off} }

// FlipResponseByte inverts the response body's byte at offset off on its
// way to the client: corruption during a download.
func FlipResponseByte(off int64) Fault { return Fault{kind: faultFlipResponse, n: off} }

// CutResponse sends the response's headers and first n body bytes, then
// closes the connection: a connection dropped during a download.
func CutResponse(n int64) Fault { return Fault{kind: faultCutResponse, n: n} }

// ShortResponse sends a well-formed response whose body, and its
// Content-Length, are cut to n bytes, leaving every other header (ETag,
// Content-Range) as the server sent it: a server or middlebox that
// silently truncates.
func ShortResponse(n int64) Fault { return Fault{kind: faultShortResponse, n: n} }

// StripConditions forwards the request without its If-None-Match and
// If-Match headers, signed anew with secretKey (the secret of the access
// key that signed it, which the new signature keeps): a server or a
// re-signing gateway that ignores conditional writes, so that a write
// meant to fail when the key exists, or has changed, replaces it. Pick
// the requests with Conditional.
func StripConditions(secretKey string) Fault {
	return Fault{kind: faultStripConditions, secret: secretKey}
}

// Conditional matches the writes (PUT, POST) that carry an If-None-Match
// or If-Match header.
func Conditional(r *http.Request) bool {
	return (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
		(r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != "")
}

// NewFaultProxy starts a proxy to target ("http://127.0.0.1:PORT") with
// rules, and closes it when the test ends.
func NewFaultProxy(t testing.TB, target string, rules ...*Rule) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("s3test: proxy target %q: %v", target, err)
	}
	p := &FaultProxy{
		target: u,
		rules:  rules,
		client: &http.Client{
			Transport: &http.Transport{
				DisableCompression:  true,
				MaxIdleConnsPerHost: 64,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	p.srv = httptest.NewServer(p)
	p.URL = p.srv.URL
	t.Cleanup(p.Close)
	return p
}

// Add appends rules; they apply to requests arriving from now on.
func (p *FaultProxy) Add(rules ...*Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, rules...)
}

// Requests returns how many requests the proxy has received.
func (p *FaultProxy) Requests() int { return int(p.requests.Load()) }

// Seen returns the requests received so far, oldest first.
func (p *FaultProxy) Seen() []Seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Seen(nil), p.seen...)
}

// Close stops the proxy, dropping the connections of requests in flight.
func (p *FaultProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// pick returns the fault of the first rule breaking r.
func (p *FaultProxy) pick(r *http.Request) Fault {
	p.mu.Lock()
	rules := p.rules
	p.seen = append(p.seen, Seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
	p.mu.Unlock()
	for _, rule := range rules {
		if rule.take(r) {
			return rule.Fault
		}
	}
	return Fault{}
}

// ServeHTTP forwards r, breaking it if a rule says so.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f := p.pick(r)
	switch f.kind {
	case faultStatus:
		_, _ = io.Copy(io.Discard, r.Body)
		writeS3Error(w, r, f.status, f.code)
		return
	case faultDropRequest:
		_, _ = io.CopyN(io.Discard, r.Body, f.n)
		panic(http.ErrAbortHandler) // closes the connection, unlogged
	case faultDelay:
		select {
		case <-clock.Real().After(f.delay):
		case <-r.Context().Done():
			return
		}
	}

	body := io.Reader(r.Body)
	if f.kind == faultFlipRequest {
		body = &flipReader{r: body, at: f.n}
	}
	u := *p.target
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	if f.kind == faultStripConditions {
		out.Header.Del("If-None-Match")
		out.Header.Del("If-Match")
		if err := resignV4(out, f.secret); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if f.kind == faultDropResponse {
		_, _ = io.Copy(io.Discard, resp.Body)
		panic(http.ErrAbortHandler)
	}

	for k, vv := range resp.Header {
		w.Header()[k] = vv
	}
	src := io.Reader(resp.Body)
	switch f.kind {
	case faultFlipResponse:
		src = &flipReader{r: src, at: f.n}
	case faultShortResponse:
		if resp.ContentLength > f.n {
			w.Header().Set("Content-Length", strconv.FormatInt(f.n, 10))
		}
		src = io.LimitReader(src, f.n)
	case faultCutResponse:
		src = io.LimitReader(src, f.n)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, src) // a client gone away is no news to the proxy
	if f.kind == faultCutResponse {
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

// writeS3Error answers with an S3 error document.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>injected by s3test.FaultProxy</Message><Resource>%s</Resource><RequestId>s3test</RequestId></Error>`,
		html.EscapeString(code), html.EscapeString(r.URL.Path))
}

// flipReader inverts the byte at offset at of the stream it passes on.
type flipReader struct {
	r   io.Reader
	pos int64
	at  int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

// resignV4 replaces the AWS Signature Version 4 of req, which has lost
// some of the headers it signed, by one over the signed headers req still
// has, with the same access key, date and scope, keyed by secret. The
// payload hash is the request's x-amz-content-sha256, so a body streamed
// with unsigned chunks stays valid.
func resignV4(req *http.Request, secret string) error {
	const algorithm = "AWS4-HMAC-SHA256"
	auth, ok := strings.CutPrefix(req.Header.Get("Authorization"), algorithm+" ")
	if !ok {
		return fmt.Errorf("s3test: re-sign: no %s Authorization header", algorithm)
	}
	var credential, signed string
	for _, field := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signed = v
		}
	}
	accessKey, scope, ok := strings.Cut(credential, "/")
	scopeParts := strings.Split(scope, "/") // date/region/service/aws4_request
	if !ok || signed == "" || len(scopeParts) != 4 {
		return fmt.Errorf("s3test: re-sign: malformed Authorization header")
	}
	var names []string
	var headers strings.Builder
	for _, name := range strings.Split(signed, ";") {
		value := strings.Join(req.Header.Values(name), ",")
		if name == "host" {
			value = req.Host
		} else if len(req.Header.Values(name)) == 0 {
			continue // one of the headers dropped
		}
		names = append(names, name)
		headers.WriteString(name + ":" + strings.Join(strings.Fields(value), " ") + "\n")
	}
	payload := req.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = "UNSIGNED-PAYLOAD"
	}
	canonical := strings.Join([]string{
		req.Method,
		s3utils.EncodePath(req.URL.Path),
		strings.ReplaceAll(req.URL.Query().Encode(), "+", "%20"),
		headers.String(),
		strings.Join(names, ";"),
		payload,
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{algorithm, req.Header.Get("X-Amz-Date"), scope, hex.EncodeToString(sum[:])}, "\n")
	key := []byte("AWS4" + secret)
	for _, part := range scopeParts {
		key = hmacSHA256(key, part)
	}
	req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		algorithm, accessKey, scope, strings.Join(names, ";"), hex.EncodeToString(hmacSHA256(key, toSign))))
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
