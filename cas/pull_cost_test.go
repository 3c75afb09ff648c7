package cas

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cas-ml/cas/remote"
)

// cpuNow is the process's user+sys CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPullCostSmallFiles times pulls of a tree of many small files: into
// a fresh store, again into the same store (everything local), and into
// the store that pushed it. CAS_PULL_COST=N runs it with N files.
func TestPullCostSmallFiles(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CAS_PULL_COST"))
	if n == 0 {
		t.Skip("CAS_PULL_COST=N times pulls of N small files")
	}
	size, _ := strconv.Atoi(os.Getenv("CAS_PULL_COST_SIZE")) // bytes a file; 200 to 2,000 by default
	ctx := t.Context()
	root := t.TempDir()
	src := filepath.Join(root, "src")
	for i := range n {
		p := filepath.Join(src, fmt.Sprintf("d%03d", i%100), fmt.Sprintf("f%05d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pseudoRandom(cmp.Or(size, 200+i%1800), uint64(i)+1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	avg := 4 << 10
	if size > 0 {
		avg = DefaultChunkAvg
	}
	seed := newStoreAt(t, filepath.Join(root, "seed", DirName), avg)
	defer seed.Close()
	res, err := seed.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tree := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	bucket := remote.NewMem()
	if _, err := seed.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	pull := func(r *Repo, what string) {
		t.Helper()
		o := tree
		c0, w0 := cpuNow(), time.Now()
		if _, err := r.Pull(ctx, &o, nil); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		fmt.Printf("pull-cost files=%d size=%d %-28s cpu=%6.3fs wall=%6.3fs\n", n, size, what, (cpuNow() - c0).Seconds(), time.Since(w0).Seconds())
	}
	fresh := freshPullStore(t, bucket)
	pull(fresh, "fresh")
	pull(fresh, "again")
	if err := seed.UseRemote(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	pull(seed, "into-the-pushing-store")
}
