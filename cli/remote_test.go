package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cas-ml/cas/cli"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/s3test"
)

// casIn runs one cas command line in dir, in process, and returns its
// exit code, stdout and stderr.
func casIn(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cli.Factory{IO: &cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb},
		Clock: clock.Real(), Getenv: func(k string) string {
			if k == "CAS_DIR" {
				return ""
			}
			return os.Getenv(k)
		}, WorkDir: func() (string, error) { return dir, nil }}
	code := cli.Run(context.Background(), f, args)
	return code, out.String(), errb.String()
}

func mustCas(t *testing.T, dir string, args ...string) string {
	t.Helper()
	code, out, errs := casIn(t, dir, args...)
	if code != 0 {
		t.Fatalf("cas %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// writeTree makes a small dataset with a file large enough for several chunks.
func writeTree(t *testing.T, dir string, seed byte) {
	t.Helper()
	files := map[string][]byte{
		"a.txt":         []byte("hello\n"),
		"sub/b.bin":     randomBytes(2_100_000, uint64(seed)),
		"sub/empty":     nil,
		"other/c.csv":   []byte("x,y\n1,2\n"),
		"shared/common": bytes.Repeat([]byte("shared between pushers "), 10_000),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	if d := treeDiff(want, got, ""); len(d) > 0 {
		t.Errorf("restored tree differs: %v", d)
	}
}

func TestRemoteEndToEnd(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	url := "s3://" + srv.NewBucket(t) + "/team"

	// Machine A pushes; the push uploads to the default remote.
	a := t.TempDir()
	writeTree(t, filepath.Join(a, "data"), 1)
	mustCas(t, a, "init", "--chunk-avg", "64KiB")
	mustCas(t, a, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	var pushed struct {
		Digest string `json:"digest"`
		Upload struct {
			Objects int64 `json:"objects"`
		} `json:"upload"`
	}
	if err := json.Unmarshal([]byte(mustCas(t, a, "push", filepath.Join(a, "data"), "--name", "ds", "--json")), &pushed); err != nil {
		t.Fatal(err)
	}
	if pushed.Upload.Objects < 2 {
		t.Errorf("push uploaded %d objects, want packs and a segment", pushed.Upload.Objects)
	}
	// Nothing new: a second push uploads nothing.
	if out := mustCas(t, a, "push", filepath.Join(a, "data"), "--name", "ds", "--json"); !strings.Contains(out, `"objects": 0`) {
		t.Errorf("second push uploaded something:\n%s", out)
	}

	// Machine B knows only the remote: restore reads from it.
	b := t.TempDir()
	mustCas(t, b, "init")
	mustCas(t, b, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	mustCas(t, b, "restore", "ds", filepath.Join(b, "out"))
	sameTree(t, filepath.Join(a, "data"), filepath.Join(b, "out"))
	// One file by REF:path.
	mustCas(t, b, "restore", "ds:sub/b.bin", filepath.Join(b, "one.bin"))
	want, _ := os.ReadFile(filepath.Join(a, "data", "sub", "b.bin"))
	if got, _ := os.ReadFile(filepath.Join(b, "one.bin")); !bytes.Equal(got, want) {
		t.Error("restore of one file from the remote gave other bytes")
	}
	// Through a counting proxy, one file's chunks, adjacent in a pack, come
	// in one ranged GET, not one per chunk.
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	c := t.TempDir()
	mustCas(t, c, "init")
	mustCas(t, c, "remote", "add", "origin", url, "--endpoint", proxy.URL)
	mustCas(t, c, "restore", "ds:sub/b.bin", filepath.Join(c, "one.bin"))
	if got, _ := os.ReadFile(filepath.Join(c, "one.bin")); !bytes.Equal(got, want) {
		t.Error("restore of one file through the proxy gave other bytes")
	}
	packGets := 0
	var gets []string
	for _, r := range proxy.Seen() {
		if r.Method == "GET" && strings.Contains(r.Path, "/packs/") {
			packGets++
			gets = append(gets, r.Path+" "+r.Header.Get("Range"))
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("pack GETs: %q", gets)
		}
	}()
	// Two trees (the root and sub/) and the file's chunks in one or two runs.
	if packGets < 3 || packGets > 4 {
		t.Errorf("restoring one file of %d bytes made %d pack GETs, want 3 or 4 (adjacent chunks merged)", len(want), packGets)
	}
	if out := mustCas(t, b, "verify", "ds", "--remote", "origin"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("verify --remote: %s", out)
	}
	// After a pull, B restores with the remote gone.
	mustCas(t, b, "pull", "ds")
	mustCas(t, b, "remote", "remove", "origin")
	mustCas(t, b, "restore", pushed.Digest, filepath.Join(b, "out2"))
	sameTree(t, filepath.Join(a, "data"), filepath.Join(b, "out2"))
	if out := mustCas(t, b, "verify"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("local verify after pull: %s", out)
	}

	// Two machines push overlapping data at once: both land, refs and all.
	var wg sync.WaitGroup
	dirs := []string{t.TempDir(), t.TempDir()}
	for i, d := range dirs {
		writeTree(t, filepath.Join(d, "data"), byte(10+i))
		mustCas(t, d, "init", "--chunk-avg", "64KiB")
		mustCas(t, d, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	}
	codes, errs := make([]int, 2), make([]string, 2)
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, errs[i] = casIn(t, d, "push", filepath.Join(d, "data"), "--name", "con"+string(rune('a'+i)), "--quiet")
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("concurrent push %d: exit %d: %s", i, c, errs[i])
		}
	}
	for _, ref := range []string{"ds", "cona", "conb"} {
		if out := mustCas(t, a, "verify", ref, "--remote", "origin"); !strings.HasPrefix(out, "ok:") {
			t.Errorf("verify %s --remote: %s", ref, out)
		}
	}
}

func TestRemoteBadSettings(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	bucket := srv.NewBucket(t)
	tests := []struct {
		name, url, endpoint, secret, want string
	}{
		{"unknown bucket", "s3://no-such-bucket-here", srv.Endpoint, "", "bucket"},
		{"wrong credentials", "s3://" + bucket, srv.Endpoint, "wrong-secret", "credentials"},
		{"unreachable endpoint", "s3://" + bucket, "http://127.0.0.1:1", "", "reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.secret != "" {
				t.Setenv("AWS_SECRET_ACCESS_KEY", tt.secret)
			}
			d := t.TempDir()
			writeTree(t, filepath.Join(d, "data"), 3)
			mustCas(t, d, "init")
			mustCas(t, d, "remote", "add", "origin", tt.url, "--endpoint", tt.endpoint)
			code, out, errs := casIn(t, d, "push", filepath.Join(d, "data"), "--name", "x")
			if tt.want == "reach" {
				// A default remote that cannot be reached leaves the push
				// local, the upload owed (issue 18; offline_sync.txtar).
				if code != 0 || !strings.Contains(errs, "cas: remote origin cannot be reached: stored locally only") {
					t.Fatalf("push with the default remote unreachable: exit %d, stderr %q; want it stored locally", code, errs)
				}
				mustCas(t, d, "refs", "rm", "x")
			} else {
				if code == 0 || out != "" {
					t.Fatalf("push to a bad remote: exit %d, stdout %q", code, out)
				}
				first, _, _ := strings.Cut(errs, "\n")
				if !strings.HasPrefix(first, "cas: remote origin") || !strings.Contains(strings.ToLower(first), tt.want) {
					t.Errorf("error = %q, want one line about the %s", first, tt.want)
				}
				// Nothing was stored locally either.
				if out := mustCas(t, d, "refs"); out != "" {
					t.Errorf("refs after a failed push: %q", out)
				}
			}
			if strings.Contains(errs, "wrong-secret") || strings.Contains(errs, srv.SecretKey) {
				t.Error("the error shows a secret")
			}
			// A read makes no check of its own (its first request is
			// one) and fails with the same line and hint.
			code, out, errs = casIn(t, d, "restore", "x", filepath.Join(d, "out"), "--from", "origin")
			if code == 0 || out != "" {
				t.Fatalf("restore from a bad remote: exit %d, stdout %q", code, out)
			}
			lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "cas: remote origin ("+tt.url+")") ||
				!strings.Contains(strings.ToLower(lines[0]), tt.want) || !strings.HasPrefix(lines[1], "hint: ") {
				t.Errorf("restore from a bad remote said %q, want one line about the %s and a hint", errs, tt.want)
			}
			if _, err := os.Stat(filepath.Join(d, "out")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("restore from a bad remote left %s (%v)", filepath.Join(d, "out"), err)
			}
		})
	}
}

// cas diff of two checkpoints compares tensors by digest and RNG states,
// with no store needed.
func TestDiffCheckpoints(t *testing.T) {
	dir := t.TempDir()
	abs := func(name string) string {
		p, _ := filepath.Abs(filepath.Join("..", "testdata", "ckpt", name))
		return p
	}
	out := mustCas(t, dir, "diff", abs("seed_layout_cpu.pt"), abs("seed_layout_legacy.pt"))
	if !strings.Contains(out, "0 tensors changed, added or removed; 16 unchanged") || !strings.Contains(out, "rng torch_cpu        equal") {
		t.Errorf("zip and legacy saves of one checkpoint:\n%s", out)
	}
	out = mustCas(t, dir, "diff", abs("seed_layout_cpu.pt"), abs("weights_only.pt"), "--json")
	var d struct {
		RNG []struct{ Kind, Op string } `json:"rng_states"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || len(d.RNG) != 3 || d.RNG[0].Op != "removed" {
		t.Errorf("RNG states removed: %+v (%v)", d.RNG, err)
	}
}

// Faults between cas and the server: 5xx answers, slow answers, dropped
// and cut connections, corrupted bodies. A push or restore either
// succeeds after retries or fails with a clear error; either way the
// local store and the remote stay consistent (verify passes), and no
// wrong byte is ever written to DEST.
func TestRemoteFaults(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	tests := []struct {
		name  string
		rules func() []*s3test.Rule
		// wantOK: the operation must succeed (the fault is retried away).
		wantOK bool
	}{
		{"503 on uploads", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("PUT", "/packs/"), Times: 2, Fault: s3test.Status(503, "SlowDown")}}
		}, true},
		{"500 on downloads", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("GET", "/packs/"), Times: 2, Fault: s3test.Status(500, "InternalError")}}
		}, true},
		{"dropped upload", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("PUT", "/packs/"), Times: 1, Fault: s3test.DropRequest(1000)}}
		}, true},
		{"cut download", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("GET", "/packs/"), Times: 2, Fault: s3test.CutResponse(100)}}
		}, true},
		{"slow answers", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("", "/packs/"), Times: 3, Fault: s3test.Delay(300 * time.Millisecond)}}
		}, true},
		{"corrupted upload", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("PUT", "/packs/"), Times: 2, Fault: s3test.FlipRequestByte(500)}}
		}, true},
		{"every download corrupted", func() []*s3test.Rule {
			return []*s3test.Rule{{Match: s3test.Match("GET", "/packs/"), Times: 1000, Fault: s3test.FlipResponseByte(20)}}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := "s3://" + srv.NewBucket(t) + "/f"
			proxy := s3test.NewFaultProxy(t, srv.Endpoint)
			a, b := t.TempDir(), t.TempDir()
			writeTree(t, filepath.Join(a, "data"), 5)
			for _, d := range []string{a, b} {
				mustCas(t, d, "init", "--chunk-avg", "64KiB")
				mustCas(t, d, "remote", "add", "origin", url, "--endpoint", proxy.URL)
			}
			proxy.Add(tt.rules()...)
			pushCode, _, pushErr := casIn(t, a, "push", filepath.Join(a, "data"), "--name", "ds", "-q")
			dest := filepath.Join(b, "out")
			restoreCode, _, restoreErr := casIn(t, b, "restore", "ds", dest, "-q")
			if tt.wantOK && (pushCode != 0 || restoreCode != 0) {
				t.Fatalf("push exit %d %s; restore exit %d %s", pushCode, pushErr, restoreCode, restoreErr)
			}
			if !tt.wantOK && restoreCode == 0 {
				t.Errorf("restore succeeded although every byte from the remote was corrupted")
			}
			if restoreCode == 0 {
				sameTree(t, filepath.Join(a, "data"), dest)
			} else {
				if _, err := os.Lstat(dest); err == nil {
					t.Errorf("a failed restore left %s behind", dest)
				}
				if n := strings.Count(strings.TrimSpace(restoreErr), "\n"); n > 1 || !strings.HasPrefix(restoreErr, "cas: ") {
					t.Errorf("restore error is not one clear line (+hint): %q", restoreErr)
				}
			}
			// Whatever happened, both stores and the remote verify.
			proxy.Close()
			for _, d := range []string{a, b} {
				if code, out, errs := casIn(t, d, "verify"); code != 0 {
					t.Errorf("local verify after the faults: exit %d\n%s%s", code, out, errs)
				}
			}
			if pushCode == 0 {
				direct := t.TempDir()
				mustCas(t, direct, "init")
				mustCas(t, direct, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
				if out := mustCas(t, direct, "verify", "ds", "--remote", "origin"); !strings.HasPrefix(out, "ok:") {
					t.Errorf("verify --remote after the faults: %s", out)
				}
			}
		})
	}
}

// A command that reads through the default remote more than once (cas
// diff reads each side, then both) never reads through a remote whose
// first request failed: its error is the store's own, with its hint,
// not a raw error of the bucket.
func TestReadThroughBadRemoteNotReused(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	d := t.TempDir()
	mustCas(t, d, "init")
	mustCas(t, d, "remote", "add", "origin", "s3://no-such-bucket-here", "--endpoint", srv.Endpoint)
	code, out, errs := casIn(t, d, "diff", "x", "y")
	if code == 0 || out != "" {
		t.Fatalf("diff of missing refs: exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "cas: warning: could not read from remote origin: ") {
		t.Errorf("diff said\n%s\nwant one warning about the remote (it is tried once), then its error", errs)
	}
	if len(lines) < 2 || lines[len(lines)-2] != "cas: ref x: not found" || !strings.HasPrefix(lines[len(lines)-1], "hint: ") {
		t.Errorf("diff of missing refs with a missing bucket said\n%s\nwant the store's error, `cas: ref x: not found`, and a hint", errs)
	}
}

// TestRemoteAddRegion checks that remote add records the bucket's region,
// learnt from the server without --region (with credentials that may only
// read, too) and never asked for with it, so that a later command does
// not ask for it either.
func TestRemoteAddRegion(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	url := "s3://" + srv.NewBucket(t) + "/lab"
	a := t.TempDir()
	content := []byte("one small file\n")
	writeFile(t, filepath.Join(a, "data", "x.txt"), content)
	mustCas(t, a, "init")
	mustCas(t, a, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	mustCas(t, a, "push", filepath.Join(a, "data"), "--name", "ds", "-q")
	ro := srv.ReadOnly(t)

	tests := []struct {
		name        string
		endpoint    string
		flags       []string
		wantAsked   int  // location requests at remote add
		wantWarning bool // the probe could not write
	}{
		{"learnt", srv.Endpoint, nil, 1, false},
		{"given", srv.Endpoint, []string{"--region", srv.Region}, 0, false},
		{"read-only credentials", ro.Endpoint, nil, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			mustCas(t, d, "init")
			proxy := s3test.NewFaultProxy(t, tt.endpoint)
			args := append([]string{"remote", "add", "origin", url, "--endpoint", proxy.URL, "--json"}, tt.flags...)
			code, out, errs := casIn(t, d, args...)
			if code != 0 || (errs != "") != tt.wantWarning {
				t.Fatalf("remote add: exit %d, stderr %q; want 0 and a warning: %v", code, errs, tt.wantWarning)
			}
			var added remote.Config
			if err := json.Unmarshal([]byte(out), &added); err != nil || added.Region != srv.Region {
				t.Errorf("remote add --json: region %q (%v), want %q:\n%s", added.Region, err, srv.Region, out)
			}
			var listed []remote.Config
			out = mustCas(t, d, "remote", "list", "--json")
			if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].Region != srv.Region {
				t.Errorf("remote list --json: want origin with region %q:\n%s", srv.Region, out)
			}
			if n := locationRequests(proxy); n != tt.wantAsked {
				t.Errorf("remote add asked for the region %d times, want %d", n, tt.wantAsked)
			}
			mustCas(t, d, "restore", "ds:x.txt", filepath.Join(d, "x.txt"), "-q")
			if got, err := os.ReadFile(filepath.Join(d, "x.txt")); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("restored %q (%v), want %q", got, err, content)
			}
			if n := locationRequests(proxy) - tt.wantAsked; n != 0 {
				t.Errorf("restore asked for the region %d times, want 0", n)
			}
		})
	}
}

// locationRequests counts the requests for a bucket's location (GET
// ?location) the proxy has seen.
func locationRequests(p *s3test.FaultProxy) int {
	n := 0
	for _, r := range p.Seen() {
		if r.Method == "GET" && r.Query.Has("location") {
			n++
		}
	}
	return n
}
