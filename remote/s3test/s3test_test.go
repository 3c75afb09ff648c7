package s3test_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/remote/s3test"
)

func TestStart(t *testing.T) {
	srv := s3test.Start(t)
	if !strings.HasPrefix(srv.Endpoint, "http://127.0.0.1:") {
		t.Errorf("Endpoint: got %q, want http://127.0.0.1:PORT", srv.Endpoint)
	}
	if err := srv.CreateBucket("locked", true); err != nil {
		t.Fatalf("CreateBucket with Object Lock: %v", err)
	}
	if err := srv.CreateBucket("locked", false); err == nil {
		t.Error("CreateBucket of an existing bucket: got nil error, want failure")
	}
	if n, err := srv.IncompleteUploads("locked"); err != nil || n != 0 {
		t.Errorf("IncompleteUploads: got %d, %v; want 0, nil", n, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := http.Get(srv.Endpoint); err == nil {
		t.Error("server still answers after Stop")
	}
}

// echo answers every request with its method, path and body.
func echo(t *testing.T, requests *atomic.Int64) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("ETag", `"abc"`)
		io.WriteString(w, r.Method+" "+r.URL.Path+" ")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFaultProxy(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	tests := []struct {
		name     string
		fault    s3test.Fault
		status   int    // want this status (0: a transport error or broken body)
		want     string // want this response body (status != 0)
		forwards bool   // the server sees the broken request
	}{
		{"status", s3test.Status(503, "SlowDown"), 503, "<Code>SlowDown</Code>", false},
		{"delay", s3test.Delay(50 * time.Millisecond), 200, "PUT /b/k 0123", true},
		{"flip request", s3test.FlipRequestByte(10), 200, "PUT /b/k 0123456789\xcf1", true},
		{"flip response", s3test.FlipResponseByte(0), 200, "\xafUT /b/k", true},
		{"short response", s3test.ShortResponse(5), 200, "PUT /", true},
		{"cut response", s3test.CutResponse(5), 0, "", true},
		{"drop request", s3test.DropRequest(100), 0, "", false},
		{"drop response", s3test.DropResponse(), 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen atomic.Int64
			srv := echo(t, &seen)
			rule := &s3test.Rule{Match: s3test.Match(http.MethodPut, "/k"), Times: 1, Fault: tt.fault}
			p := s3test.NewFaultProxy(t, srv.URL, rule)
			do := func() (int, string, error) {
				req, err := http.NewRequest(http.MethodPut, p.URL+"/b/k", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, "", err
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				return resp.StatusCode, string(got), err
			}
			status, got, err := do()
			switch {
			case tt.status == 0 && err == nil:
				t.Errorf("broken request: got status %d, body %.20q, no error; want an error", status, got)
			case tt.status != 0 && (err != nil || status != tt.status || !strings.Contains(got, tt.want)):
				t.Errorf("broken request: got %d %.40q %v; want %d with %q", status, got, err, tt.status, tt.want)
			}
			if forwarded := seen.Load() == 1; forwarded != tt.forwards {
				t.Errorf("server saw the broken request: %v, want %v", forwarded, tt.forwards)
			}
			// The rule is spent: the next request passes untouched.
			status, got, err = do()
			if err != nil || status != 200 || got != "PUT /b/k "+string(body) {
				t.Errorf("second request: got %d %.20q %v; want it forwarded untouched", status, got, err)
			}
			if rule.Hits() != 1 || p.Requests() != 2 || len(p.Seen()) != 2 {
				t.Errorf("got %d hits, %d requests, %d seen; want 1, 2, 2", rule.Hits(), p.Requests(), len(p.Seen()))
			}
		})
	}
}

func TestFaultProxyMatch(t *testing.T) {
	var seen atomic.Int64
	srv := echo(t, &seen)
	rule := &s3test.Rule{Match: s3test.Match(http.MethodGet, "/x"), Times: 2, Fault: s3test.Status(500, "InternalError")}
	p := s3test.NewFaultProxy(t, srv.URL, rule)
	get := func(path string) int {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	got := []int{get("/y"), get("/x"), get("/y"), get("/x"), get("/x")}
	want := []int{200, 500, 200, 500, 200}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("statuses: got %v, want %v", got, want)
		}
	}
}

func TestFind(t *testing.T) {
	p, err := s3test.Find()
	if errors.Is(err, s3test.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil || p == "" {
		t.Fatalf("Find: got %q, %v", p, err)
	}
}
