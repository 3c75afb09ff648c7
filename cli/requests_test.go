package cli_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/remote/s3test"
)

// A fresh machine restores one file of one push from a real bucket in at
// most 10 requests, counted at the wire from `cas remote add` on, and in
// as many after 3 pushes as after 12: none of them depends on the
// bucket's history (issue 13). The remote is added without --region:
// remote add asks for the bucket's region and records it, so the restore
// does not ask (TestRemoteAddRegion checks that).
func TestFreshRestoreRequests(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	url := "s3://" + srv.NewBucket(t) + "/lab"
	a := t.TempDir()
	mustCas(t, a, "init")
	mustCas(t, a, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	rng := rand.New(rand.NewPCG(13, 13))
	weights := map[int][]byte{}
	push := func(from, to int) {
		for i := from; i < to; i++ {
			src := filepath.Join(t.TempDir(), fmt.Sprint("run", i))
			weights[i] = make([]byte, 16<<10)
			for j := range weights[i] {
				weights[i][j] = byte(rng.Uint32())
			}
			writeFile(t, filepath.Join(src, "data", "weights.bin"), weights[i])
			writeFile(t, filepath.Join(src, "notes.txt"), []byte(fmt.Sprintf("push %d\n", i)))
			mustCas(t, a, "push", src, "--name", fmt.Sprint("push-", i), "-q")
		}
	}
	restore := func() int {
		b := t.TempDir()
		mustCas(t, b, "init")
		proxy := s3test.NewFaultProxy(t, srv.Endpoint)
		mustCas(t, b, "remote", "add", "origin", url, "--endpoint", proxy.URL, "--connections", "1")
		before := proxy.Requests()
		out := filepath.Join(b, "weights.bin")
		mustCas(t, b, "restore", "push-1:data/weights.bin", out, "-q")
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, weights[1]) {
			t.Fatalf("restored %d bytes (%v), want the 16 KiB pushed", len(got), err)
		}
		var seen []string
		for _, s := range proxy.Seen()[before:] {
			seen = append(seen, s.Method+" "+s.Path+"?"+s.Query.Encode())
		}
		t.Logf("%d requests:\n%s", len(seen), strings.Join(seen, "\n"))
		return proxy.Requests() - before
	}
	push(0, 3)
	n3 := restore()
	push(3, 12)
	n12 := restore()
	if n3 != n12 {
		t.Errorf("a fresh restore made %d requests after 3 pushes and %d after 12", n3, n12)
	}
	if n12 > 10 {
		t.Errorf("a fresh restore of one file made %d requests, want at most 10", n12)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
