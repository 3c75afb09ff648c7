package cas_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// These tests hold cas to docs/FORMAT.md as an outsider reads it: the
// digests cas computes must be those of b3sum and of docs/tree_digest.py,
// which implements the tree encoding with b3sum alone.

// needTools skips the test when b3sum or python3 is missing, except in CI,
// where a missing tool is a broken runner.
func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"b3sum", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// scriptDigest runs docs/tree_digest.py on path.
func scriptDigest(t *testing.T, path string) string {
	t.Helper()
	return run(t, "python3", "../docs/tree_digest.py", path)
}

// b3sum returns what `b3sum --no-names FILE` prints.
func b3sum(t *testing.T, path string) string {
	t.Helper()
	return run(t, "b3sum", "--no-names", "--", path)
}

func hashPath(t *testing.T, path string, opts cas.PushOptions) *cas.HashResult {
	t.Helper()
	res, err := cas.Hash(t.Context(), nil, []string{path}, opts)
	if err != nil {
		t.Fatalf("Hash(%s): %v", path, err)
	}
	return res
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// bigFileSize exceeds the 8 MiB maximum chunk of the default parameters,
// so Hash streams the file through the chunk pipeline.
const bigFileSize = 9<<20 + 12345

// makeAwkwardTree builds, below dir, a tree with every kind of entry and
// the names that trip up scripts.
func makeAwkwardTree(t *testing.T, dir string) {
	t.Helper()
	files := []struct {
		name    string
		content []byte
		mode    os.FileMode
	}{
		{"plain.txt", []byte("hello\n"), 0o644},
		{"with space.txt", []byte("space"), 0o644},
		{"new\nline", []byte("newline"), 0o644},
		{"\xff\xfe not utf-8", []byte("latin"), 0o644},
		{"back\\slash", []byte("backslash"), 0o644},
		{"-dash", []byte("dash"), 0o644},
		{strings.Repeat("x", 251) + ".bin", []byte("255-byte name"), 0o644},
		{"empty", nil, 0o644},
		{"run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"group-exec", []byte("g+x only"), 0o610},
		{"read-only", []byte("r--"), 0o444},
		{"big.bin", randomBytes(bigFileSize, 1), 0o644},
		{"nested/a/b/c/deep.txt", []byte("deep"), 0o644},
		{"nested/a/sibling", []byte("sibling"), 0o644},
		{"dotcas/.cas", []byte("a file named .cas is kept"), 0o644},
		{".cas-not", []byte("kept too"), 0o644},
		{".cas/config", []byte("a store is never stored"), 0o644},
		{"nested/.cas/junk", []byte("nor a nested one"), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"link":         "plain.txt",
		"dangling":     "does/not/exist",
		"\xfflink":     "\xfe\n target with spaces",
		"nested/up":    "../nested",
		"absolute-ish": "/nonexistent/absolute",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"emptydir", "nested/empty"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTreeDigestScript(t *testing.T) {
	t.Parallel()
	needTools(t)
	dir := filepath.Join(t.TempDir(), "data")
	makeAwkwardTree(t, dir)

	var skipped []string
	res := hashPath(t, dir, cas.PushOptions{Warn: func(path string, err error) { skipped = append(skipped, path) }})
	if res.Kind != cas.KindDir {
		t.Fatalf("Hash kind %v, want dir", res.Kind)
	}
	if want := []string{filepath.Join(dir, "fifo")}; strings.Join(skipped, "|") != strings.Join(want, "|") {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	if got := scriptDigest(t, dir); got != res.Digest.String() {
		t.Fatalf("tree_digest.py = %s, cas = %s", got, res.Digest)
	}

	t.Run("root symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link-to-data")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		if got := hashPath(t, link, cas.PushOptions{}).Digest; got != res.Digest {
			t.Errorf("Hash(symlink to dir) = %v, want %v", got, res.Digest)
		}
		if got := scriptDigest(t, link); got != res.Digest.String() {
			t.Errorf("tree_digest.py(symlink to dir) = %s, want %s", got, res.Digest)
		}
	})

	// Identity ignores mtime and permission bits other than exec.
	t.Run("metadata", func(t *testing.T) {
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		for _, name := range []string{"plain.txt", "nested/a/b/c", "big.bin"} {
			if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(dir, "plain.txt"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := hashPath(t, dir, cas.PushOptions{}).Digest; got != res.Digest {
			t.Errorf("after chmod and touch: %v, want %v", got, res.Digest)
		}
		if err := os.Chmod(filepath.Join(dir, "plain.txt"), 0o700); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(filepath.Join(dir, "plain.txt"), 0o644)
		got := hashPath(t, dir, cas.PushOptions{}).Digest
		if got == res.Digest {
			t.Errorf("setting an exec bit left the digest at %v", got)
		}
		if s := scriptDigest(t, dir); s != got.String() {
			t.Errorf("with an exec bit: tree_digest.py = %s, cas = %s", s, got)
		}
	})

	// A store with small chunks cuts the big file in many pieces; the
	// digest must not notice.
	t.Run("push", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), ".cas")
		p, err := cas.NewChunkParams(64 << 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := cas.Init(store, p, time.Now()); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		r, err := cas.Open(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		pr, err := r.Push(ctx, []string{dir}, cas.PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pr.Digest != res.Digest {
			t.Errorf("Push digest %v, Hash digest %v", pr.Digest, res.Digest)
		}
		if pr.Chunks < int64(bigFileSize/p.Max) {
			t.Errorf("push stored %d chunks; want the big file cut in at least %d", pr.Chunks, bigFileSize/p.Max)
		}
	})
}

func TestTreeDigestFile(t *testing.T) {
	t.Parallel()
	needTools(t)
	dir := t.TempDir()
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello world\n")},
		{"one MiB", randomBytes(1<<20, 2)},
		{"big", randomBytes(bigFileSize, 3)},
	} {
		t.Run(f.name, func(t *testing.T) {
			p := filepath.Join(dir, f.name)
			if err := os.WriteFile(p, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			res := hashPath(t, p, cas.PushOptions{})
			if res.Kind != cas.KindFile || res.Size != int64(len(f.data)) {
				t.Errorf("Hash = %v of %d bytes, want file of %d", res.Kind, res.Size, len(f.data))
			}
			if want := digest.Of(f.data); res.Digest != want {
				t.Errorf("Hash = %v, digest.Of = %v", res.Digest, want)
			}
			if got := b3sum(t, p); got != res.Digest.Hex() {
				t.Errorf("b3sum = %s, cas = %s", got, res.Digest.Hex())
			}
			if got := scriptDigest(t, p); got != res.Digest.String() {
				t.Errorf("tree_digest.py = %s, cas = %s", got, res.Digest)
			}
		})
	}
}
