package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/s3test"
)

// buildCAS builds the cas command into a temporary directory.
func buildCAS(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cas")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cas-ml/cas").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// killer kills a cas process with SIGKILL when it sends the request that
// pick chooses among those that change a bucket (PUT, POST, DELETE).
// With refuse the request never reaches the server; without, it is
// passed on after the kill, so the server may carry it out for a client
// that is gone.
type killer struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	pick   func(method, key string) bool
	refuse bool
	killed bool
	// seen is what the current process sent, for the picks to count:
	// the changes (method and key) and the listings (prefix).
	changes  []string
	listings []string
}

func (k *killer) rule() *s3test.Rule {
	return &s3test.Rule{Times: 1 << 30, Fault: s3test.Status(http.StatusInternalServerError, "InternalError"),
		Match: func(r *http.Request) bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.cmd == nil || k.cmd.Process == nil {
				return false
			}
			if r.Method == http.MethodGet && r.URL.Query().Get("list-type") != "" {
				k.listings = append(k.listings, r.URL.Query().Get("prefix"))
				return false
			}
			if r.Method != http.MethodPut && r.Method != http.MethodPost && r.Method != http.MethodDelete {
				return false
			}
			// "/bucket/prefix/key" → "key"
			parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
			key := parts[len(parts)-1]
			if k.killed || k.pick == nil || !k.pick(r.Method, key) {
				k.changes = append(k.changes, r.Method+" "+key)
				return k.killed && k.refuse
			}
			_ = k.cmd.Process.Kill()
			k.killed = true
			return k.refuse
		}}
}

// run runs cas in dir (its store) and reports whether it was killed.
func (k *killer) run(t *testing.T, bin, dir string, pick func(method, key string) bool, args ...string) (killed bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CAS_DIR=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	k.mu.Lock()
	k.cmd, k.pick, k.killed, k.changes, k.listings = cmd, pick, false, nil, nil
	if err := cmd.Start(); err != nil {
		k.mu.Unlock()
		t.Fatal(err)
	}
	k.mu.Unlock()
	err := cmd.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cmd = nil
	var ee *exec.ExitError
	switch {
	case err == nil:
		return false
	case errors.As(err, &ee) && k.killed:
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("cas %s: %v, want death by SIGKILL\n%s", strings.Join(args, " "), err, out.String())
		}
		return true
	default:
		t.Fatalf("cas %s: %v\n%s", strings.Join(args, " "), err, out.String())
		return false
	}
}

// nth picks the n-th change (counting from 1) that want matches.
func nth(n int, want func(method, key string) bool) func(string, string) bool {
	seen := 0
	return func(method, key string) bool {
		if want(method, key) {
			seen++
		}
		return seen == n
	}
}

// A lookup entry lost by a killed compaction would still be found by a
// reader (it falls back to the segments), only slower: so a fresh store
// restores each ref through a proxy that says whether it listed index/.
func restoreLazily(t *testing.T, srv *s3test.Server, url, ref, want, when string) {
	t.Helper()
	d := t.TempDir()
	mustCas(t, d, "init")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	mustCas(t, d, "remote", "add", "origin", url, "--endpoint", proxy.URL, "--region", srv.Region)
	out := filepath.Join(d, "out")
	mustCas(t, d, "restore", ref, out, "-q")
	if diff := treeDiff(want, out, ""); len(diff) > 0 {
		t.Errorf("%s: %s restored lazily differs: %v", when, ref, diff)
	}
	for _, s := range proxy.Seen() {
		if strings.HasSuffix(s.Query.Get("prefix"), "index/") {
			t.Errorf("%s: restoring %s listed the index segments: an entry is missing from the lookup index", when, ref)
			break
		}
	}
}

// checkLookupComplete checks that the lookup index of the bucket holds
// an entry for every one its index segments give (what the upgrade, or
// a push, wrote before any compaction merged it): a reader finds each
// blob and file through the lookup index without falling back to the
// segments.
func checkLookupComplete(t *testing.T, srv *s3test.Server, bucket, prefix, when string) {
	t.Helper()
	ctx := t.Context()
	be, err := remote.NewS3(ctx, srv.Config(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	var want []format.RunEntry
	err = be.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error {
		id, err := format.SegmentIDFromKey(oi.Key)
		if err != nil {
			return err
		}
		data, err := remote.ReadAll(ctx, be, oi.Key)
		if err != nil {
			return err
		}
		seg, err := format.DecodeSegment(data)
		if err != nil {
			return fmt.Errorf("%s: %w", oi.Key, err)
		}
		want = append(want, lookup.FromSegment(id, oi.Size, seg)...)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: read the segments: %v", when, err)
	}
	ids := make([]digest.Digest, len(want))
	for i, e := range want {
		ids[i] = e.ID
	}
	got, err := lookup.NewReader(be, 8).Lookup(ctx, ids)
	if err != nil {
		t.Fatalf("%s: look the segments' entries up: %v", when, err)
	}
	missing := 0
	for _, e := range want {
		if !slices.ContainsFunc(got[e.ID], func(g format.RunEntry) bool {
			return g.Kind == e.Kind && g.Blob == e.Blob && slices.Equal(g.Chunks, e.Chunks)
		}) {
			if missing++; missing == 1 {
				t.Errorf("%s: the lookup index lacks %s (kind %d) of segment %s", when, e.ID.Short(), e.Kind, e.Segment.Short())
			}
		}
	}
	if missing > 1 {
		t.Errorf("%s: the lookup index lacks %d of the segments' %d entries", when, missing, len(want))
	}
}

// TestKillRemote kills real cas processes with SIGKILL while they write
// to a real bucket (versitygw, through a proxy that sends the kill when
// the chosen request arrives): `cas remote upgrade` at each of its
// writes, and `cas push` at points of the compaction of its lookup runs
// (the merged run's write, the deletion of the runs it replaces). Each
// request is either stopped with its client or passed on after the
// kill. After every kill the bucket alone verifies and restores every
// ref byte for byte, the killed store verifies, and the command run
// again completes; then a fresh store restores refs through the lookup
// index alone.
func TestKillRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cas and kills it many times")
	}
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	bin := buildCAS(t)
	t.Run("upgrade", func(t *testing.T) { killUpgrade(t, srv, bin) })
	t.Run("compaction", func(t *testing.T) { killCompaction(t, srv, bin) })
}

// killUpgrade kills `cas remote upgrade` of the bucket the previous cas
// wrote (testdata/oldbucket) at its n-th write, n = 1, 2, … until it
// completes.
func killUpgrade(t *testing.T, srv *s3test.Server, bin string) {
	ctx := t.Context()
	fixture := filepath.Join("..", "testdata", "oldbucket")
	load := func() string {
		bucket := srv.NewBucket(t)
		be, err := remote.NewS3(ctx, srv.Config(bucket, "old"))
		if err != nil {
			t.Fatal(err)
		}
		err = filepath.WalkDir(fixture, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() == "README.md" {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(fixture, p)
			return be.Put(ctx, filepath.ToSlash(rel), bytes.NewReader(data), int64(len(data)), remote.PutOptions{})
		})
		if err != nil {
			t.Fatal(err)
		}
		return bucket
	}
	// What the refs hold, restored from the bucket as the old cas left it.
	ref := t.TempDir()
	bucket := load()
	mustCas(t, ref, "init")
	mustCas(t, ref, "remote", "add", "origin", "s3://"+bucket+"/old", "--endpoint", srv.Endpoint)
	wants := map[string]string{}
	for _, name := range []string{"olddata", "olddata2"} {
		wants[name] = filepath.Join(ref, name)
		mustCas(t, ref, "restore", name, wants[name], "-q")
	}
	k := &killer{}
	for _, refuse := range []bool{true, false} {
		k.refuse = refuse
		kills := 0
		for n := 1; ; n++ {
			bucket := load()
			url := "s3://" + bucket + "/old"
			proxy := s3test.NewFaultProxy(t, srv.Endpoint, k.rule())
			d := t.TempDir()
			mustCas(t, d, "init")
			mustCas(t, d, "remote", "add", "origin", url, "--endpoint", proxy.URL, "--region", srv.Region)
			when := fmt.Sprintf("upgrade killed at write %d (request refused %v)", n, refuse)
			if !k.run(t, bin, d, nth(n, func(string, string) bool { return true }), "remote", "upgrade", "origin") {
				t.Logf("upgrade: %d kill points (request refused %v); it completes in %d writes", kills, refuse, n-1)
				if n == 1 {
					t.Fatal("the upgrade wrote nothing")
				}
				break
			}
			kills++
			checkBucket(t, srv, bucket, "old", when, wants)
			mustCas(t, d, "verify", "-q")
			mustCas(t, d, "remote", "upgrade", "origin")
			checkBucket(t, srv, bucket, "old", when+", then run again", wants)
			checkLookupComplete(t, srv, bucket, "old", when+", then run again")
			for name, src := range wants {
				restoreLazily(t, srv, url, name, src, when+", then run again")
			}
			if t.Failed() {
				return
			}
		}
	}
}

// killCompaction pushes to a bucket whose lookup shards hold runs of
// earlier pushes, so that each push compacts some of them, and kills each
// push at one point of its compaction: its n-th deletion of a lookup run,
// or the n-th write of a run after the compaction began listing shards.
func killCompaction(t *testing.T, srv *s3test.Server, bin string) {
	bucket := srv.NewBucket(t)
	url := "s3://" + bucket + "/lab"
	k := &killer{}
	proxy := s3test.NewFaultProxy(t, srv.Endpoint, k.rule())
	a := t.TempDir()
	mustCas(t, a, "init")
	mustCas(t, a, "remote", "add", "origin", url, "--endpoint", proxy.URL, "--region", srv.Region)
	// A push of many small files writes a lookup run into most shards.
	tree := func(seed int) string {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("t", seed))
		for i := range 800 {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("d%02d", i/100), fmt.Sprintf("f%04d", i)), []byte(fmt.Sprintf("file %d of tree %d\n", i, seed)))
		}
		return dir
	}
	wants := map[string]string{}
	for i := range 3 {
		wants[fmt.Sprint("h", i)] = tree(i)
		mustCas(t, a, "push", wants[fmt.Sprint("h", i)], "--name", fmt.Sprint("h", i), "-q")
	}
	lookupDelete := func(method, key string) bool {
		return method == http.MethodDelete && strings.HasPrefix(key, "lookup/")
	}
	compacting := false
	mergedWrite := func(method, key string) bool {
		// Called under k.mu: k.listings is this process's.
		if !compacting {
			for _, p := range k.listings {
				if strings.Contains(p, "lookup/") && !strings.HasSuffix(p, "lookup/") {
					compacting = true
				}
			}
		}
		return compacting && method == http.MethodPut && strings.HasPrefix(key, "lookup/")
	}
	points := []struct {
		what string
		n    int
		kind func(string, string) bool
	}{
		{"lookup run deletion", 1, lookupDelete},
		{"merged run write", 1, mergedWrite},
		{"lookup run deletion", 2, lookupDelete},
		{"merged run write", 3, mergedWrite},
		{"lookup run deletion", 20, lookupDelete},
	}
	kills, last := 0, "h2"
	for i, p := range points {
		k.refuse = i%2 == 0
		name := fmt.Sprint("p", i)
		src := tree(10 + i)
		compacting = false
		when := fmt.Sprintf("push %d killed at %s %d (request refused %v)", i, p.what, p.n, k.refuse)
		if k.run(t, bin, a, nth(p.n, p.kind), "push", src, "--name", name, "-q") {
			kills++
			// Everything verifies; the oldest ref and the newest restore.
			checkBucketRefs(t, srv, bucket, "lab", when, map[string]string{"h0": wants["h0"], last: wants[last]})
			checkLookupComplete(t, srv, bucket, "lab", when)
			mustCas(t, a, "verify", "-q")
		} else {
			t.Logf("%s: the push completed without reaching it", when)
		}
		mustCas(t, a, "push", src, "--name", name, "-q")
		wants[name], last = src, name
		checkLookupComplete(t, srv, bucket, "lab", when+", then pushed again")
		// The push's runs and the oldest push's, which compactions merged.
		restoreLazily(t, srv, url, name, src, when+", then pushed again")
		restoreLazily(t, srv, url, "h0", wants["h0"], when+", then pushed again")
		if t.Failed() {
			return
		}
	}
	checkBucket(t, srv, bucket, "lab", "at the end", wants)
	for ref, src := range wants {
		restoreLazily(t, srv, url, ref, src, "at the end")
	}
	t.Logf("%d of %d pushes killed during compaction", kills, len(points))
	if kills < len(points)-2 {
		t.Errorf("only %d of %d pushes reached their kill point: the pushes compact less than this test assumes", kills, len(points))
	}
}
