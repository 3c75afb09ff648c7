package cas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// diffByHash is what DiffPath must match: the changes DiffEach finds
// between a and Hash's digest of path, and that digest.
func diffByHash(t *testing.T, r *Repo, a *Object, path string, excludes []string) ([]Change, *HashResult) {
	t.Helper()
	h, err := Hash(t.Context(), r, []string{path}, PushOptions{Excludes: excludes})
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	b := &Object{Digest: h.Digest, Kind: h.Kind, Size: h.Size}
	changes, err := Diff(t.Context(), a, r.StoreTrees(), b, h.Trees())
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	return changes, h
}

// TestDiffPathMatchesHash changes a pushed tree in every way a diff
// names (files modified with and without a change of size, exec bits,
// links retargeted, files turned into directories and back, directories
// added, removed and emptied, excluded paths) and checks that DiffPath
// finds exactly the changes, in the same order, that a diff against the
// path's whole digest finds, and the same digest when asked, with the
// stat cache and without it.
func TestDiffPathMatchesHash(t *testing.T) {
	r := newStoreForTest(t, 64<<10)
	entries := append(awkwardTree(),
		genEntry{path: "same/size.txt", kind: KindFile, data: []byte("12345")},
		genEntry{path: "same/untouched.txt", kind: KindFile, data: []byte("keep")},
		genEntry{path: "f2dir", kind: KindFile, data: []byte("file")},
		genEntry{path: "dir2f/k", kind: KindFile, data: []byte("k")},
		genEntry{path: "gone/inner/f", kind: KindFile, data: []byte("f")},
		genEntry{path: "link2file", kind: KindLink, target: "plain.txt"},
		genEntry{path: "a.tmp", kind: KindFile, data: []byte("excluded later")},
	)
	src, a := pushTree(t, r, entries)
	at := func(p string) string { return filepath.Join(src, filepath.FromSlash(p)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// An unchanged tree first: no change, the pushed digest.
	for _, withCache := range []bool{true, false} {
		repo := r
		if !withCache {
			repo = nil
		}
		var got []Change
		obj, err := DiffPath(t.Context(), repo, a, r.StoreTrees(), src, DiffPathOptions{Digest: true}, func(c Change) error {
			got = append(got, c)
			return nil
		})
		if err != nil || len(got) != 0 || obj.Digest != a.Digest || obj.Size != a.Size {
			t.Fatalf("DiffPath of the pushed tree (stat cache %v): %v, %v, %v; want no change and %s", withCache, obj, got, err, a.Digest.Short())
		}
	}
	must(os.WriteFile(at("plain.txt"), []byte("HELLO\n"), 0o644))          // same size
	must(os.WriteFile(at("same/size.txt"), []byte("54321"), 0o644))        // same size
	must(os.WriteFile(at("with space.txt"), []byte("much longer"), 0o644)) // new size
	must(os.Chmod(at("bin/run.sh"), 0o644))                                // exec bit off
	must(os.Chtimes(at("same/untouched.txt"), time.Now(), time.Now().Add(time.Hour)))
	must(os.Remove(at("links/relative")))
	must(os.Symlink("../with space.txt", at("links/relative")))
	must(os.Remove(at("link2file")))
	must(os.WriteFile(at("link2file"), []byte("plain.txt"), 0o644))
	must(os.Remove(at("f2dir")))
	must(os.MkdirAll(at("f2dir/sub/empty"), 0o755))
	must(os.WriteFile(at("f2dir/sub/x"), []byte("x"), 0o644))
	must(os.RemoveAll(at("dir2f")))
	must(os.WriteFile(at("dir2f"), []byte("now a file"), 0o644))
	must(os.RemoveAll(at("gone")))
	must(os.Remove(at("emptydir")))
	must(os.MkdirAll(at("new/deeper"), 0o755))
	must(os.MkdirAll(at("new/emptynew"), 0o755))
	must(os.WriteFile(at("new/deeper/n"), []byte("n"), 0o755))
	must(os.Remove(at("small/d3/f003")))
	must(os.WriteFile(at("small/d4/added"), []byte("added"), 0o644))
	must(os.WriteFile(at("big.bin"), pseudoRandom(5<<20+123, 2), 0o644)) // same size, read in pieces

	for _, excludes := range [][]string{nil, {"*.tmp", "small/d7"}} {
		want, h := diffByHash(t, r, a, src, excludes)
		if len(want) < 18 {
			t.Fatalf("the diff by hash found %d changes: %v; the test changes more", len(want), want)
		}
		for _, withCache := range []bool{true, false} {
			for _, withDigest := range []bool{false, true} {
				repo := r
				if !withCache {
					repo = nil
				}
				var got []Change
				obj, err := DiffPath(t.Context(), repo, a, r.StoreTrees(), src, DiffPathOptions{Excludes: excludes, Digest: withDigest},
					func(c Change) error {
						got = append(got, c)
						return nil
					})
				if err != nil {
					t.Fatalf("DiffPath (excludes %q, stat cache %v, digest %v): %v", excludes, withCache, withDigest, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("DiffPath (excludes %q, stat cache %v, digest %v):\ngot  %v\nwant %v", excludes, withCache, withDigest, got, want)
				}
				if obj.Kind != h.Kind || obj.Size != h.Size {
					t.Errorf("DiffPath returned kind %v size %d, want %v %d", obj.Kind, obj.Size, h.Kind, h.Size)
				}
				if withDigest && obj.Digest != h.Digest {
					t.Errorf("DiffPath digest %s, want %s", obj.Digest.Short(), h.Digest.Short())
				}
			}
		}
	}

	// A file on disk against a stored tree and the other way round, and
	// a file against a file.
	file := at("plain.txt")
	plain := lookup(t, r, a, "plain.txt")
	for _, tc := range []struct {
		name string
		a    *Object
		path string
	}{{"tree vs file", a, file}, {"file vs tree", plain, src}, {"file vs file", plain, file}, {"file vs another file", plain, at("non-utf8-\xff\xfe")}} {
		want, h := diffByHash(t, r, tc.a, tc.path, nil)
		var got []Change
		obj, err := DiffPath(t.Context(), r, tc.a, r.StoreTrees(), tc.path, DiffPathOptions{Digest: true}, func(c Change) error {
			got = append(got, c)
			return nil
		})
		if err != nil || !slices.Equal(got, want) || obj.Digest != h.Digest {
			t.Errorf("%s: DiffPath got %v, %v, %v; want %v, %s", tc.name, got, obj, err, want, h.Digest.Short())
		}
	}
}

// TestDiffPathStopsAtFnError checks that an error from fn ends the walk
// and comes back as it was.
func TestDiffPathStopsAtFnError(t *testing.T) {
	r := newStoreForTest(t, 64<<10)
	src, a := pushTree(t, r, awkwardTree())
	if err := os.RemoveAll(filepath.Join(src, "small")); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err := DiffPath(t.Context(), r, a, r.StoreTrees(), src, DiffPathOptions{}, func(Change) error {
		calls++
		return errFnStop
	})
	if !errors.Is(err, errFnStop) || calls != 1 {
		t.Fatalf("DiffPath: %v after %d calls, want errFnStop after 1", err, calls)
	}
}

var errFnStop = errors.New("stop")

// TestDiffStatusMemoryFlat compares a tree of 10^4 tiny files and one of
// 10^5, each pushed and then changed here and there, with its stored
// tree as status does (stat cache, every digest for --json) and as diff
// does a copy elsewhere (no stat cache: same-size files read): the live
// heap must rise no more for the larger. Holding the trees of the whole
// path costs about 100 bytes a file, which 90,000 more files would turn
// into some 9 MiB, and names of 100 bytes (as here, to tell the two
// apart beyond the noise of the measure) some 15 MiB; what the walk
// holds is a directory of 1,000 entries.
// The heap is the process's: the test runs alone, not in parallel.
func TestDiffStatusMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and pushes 110,000 files")
	}
	const margin = 8 << 20
	// Frequent collections: the live heap is known at each one.
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	type mode struct {
		name    string
		noCache bool
		digest  bool
	}
	modes := []mode{{"status", false, false}, {"status --json", false, true}, {"diff", true, false}}
	got := map[int][]uint64{}
	for _, n := range []int{10_000, 100_000} {
		r := newStoreForTest(t, 64<<10)
		src := filepath.Join(t.TempDir(), "src")
		writeTinyFilesNamed(t, src, n, strings.Repeat("n", 100))
		res, err := r.Push(t.Context(), []string{src}, PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
		// One change in every tenth directory, a directory gone, one new.
		for i := 0; i < n; i += 10_000 {
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("d%03d", i/1000), fmt.Sprintf("%s%06d", strings.Repeat("n", 100), i)), []byte("changed"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.RemoveAll(filepath.Join(src, "d001")); err != nil {
			t.Fatal(err)
		}
		writeTinyFiles(t, filepath.Join(src, "new"), 1000)
		want := 1000 + 1000 + n/10_000 // d001's files gone, new/'s added, every …0000 file modified
		for _, m := range modes {
			repo := r
			if m.noCache {
				repo = nil
			}
			changes := 0
			peak := peakLiveHeap(t, func() {
				_, err = DiffPath(t.Context(), repo, obj, r.StoreTrees(), src, DiffPathOptions{Digest: m.digest}, func(Change) error {
					changes++
					return nil
				})
			})
			if err != nil || changes != want {
				t.Fatalf("%s of %d files: %d changes, %v; want %d", m.name, n, changes, err, want)
			}
			got[n] = append(got[n], peak)
			t.Logf("%s, %d files: live heap rose %.1f MiB", m.name, n, float64(peak)/(1<<20))
		}
	}
	for i, m := range modes {
		if small, large := got[10_000][i], got[100_000][i]; large > small+margin {
			t.Errorf("%s: live heap rose %d bytes for 10^5 files, %d for 10^4: want at most %d more", m.name, large, small, margin)
		}
	}
}
