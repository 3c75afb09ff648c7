package cas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// casBin runs a cas binary against one store.
type casBin struct {
	bin   string // the executable
	store string // CAS_DIR
	dir   string // working directory
}

// buildCAS builds the cas command into a temporary directory that lasts
// as long as t.
func buildCAS(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build cas with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "cas")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/cas-ml/cas").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newCASStore runs cas init in a new directory and returns a runner for it.
func newCASStore(t *testing.T, bin string) casBin {
	t.Helper()
	dir := t.TempDir()
	c := casBin{bin: bin, store: filepath.Join(dir, DirName), dir: dir}
	c.mustRun(t, "init", "--chunk-avg", "1MiB")
	return c
}

func (c casBin) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "CAS_DIR="+c.store)
	return cmd
}

// run runs cas and returns its stdout, stderr and exit code.
func (c casBin) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := c.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	default:
		t.Fatalf("cas %s: %v", strings.Join(args, " "), err)
		return "", "", -1
	}
}

// mustRun runs cas and fails the test unless it exits 0.
func (c casBin) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := c.run(t, args...)
	if code != 0 {
		t.Fatalf("cas %s: got exit code %d, want 0\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// pushJSON is what these tests read of `cas push --json`.
type pushJSON struct {
	Digest   digest.Digest `json:"digest"`
	Files    int64         `json:"files"`
	Bytes    int64         `json:"bytes"`
	NewBytes int64         `json:"new_bytes"`
	Ref      string        `json:"ref"`
}

func (c casBin) push(t *testing.T, args ...string) pushJSON {
	t.Helper()
	out := c.mustRun(t, append([]string{"push", "--json"}, args...)...)
	var res pushJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("push --json output %q: %v", out, err)
	}
	return res
}

// verify runs `cas verify` and fails the test unless it reports no damage.
func (c casBin) verify(t *testing.T) {
	t.Helper()
	if stdout, stderr, code := c.run(t, "verify", "--quiet"); code != 0 {
		t.Errorf("cas verify: got exit code %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// packCount counts the packs in the store.
func (c casBin) packCount(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(c.store, storeDir, "packs"), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// killPushAfter starts `cas push path` and kills it with SIGKILL once the
// store holds at least packs packs. It returns the packs then stored.
func (c casBin) killPushAfter(t *testing.T, path string, packs int) int {
	t.Helper()
	cmd := c.command("push", "--quiet", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for c.packCount(t) < packs {
		select {
		case err := <-exited:
			t.Fatalf("push ended (%v) before it wrote %d packs: give it more data\n%s", err, packs, stderr.String())
		case <-deadline:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Fatalf("push wrote no %d packs within 60s", packs)
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("killed push: got %v, want death by SIGKILL", err)
	}
	return c.packCount(t)
}

// writeRandomFiles writes n incompressible files of about size bytes
// below dir and returns their total size.
func writeRandomFiles(t *testing.T, dir string, n, size int, seed uint64) int64 {
	t.Helper()
	var total int64
	for i := range n {
		p := fmt.Sprintf("d%d/f%02d.bin", i%4, i)
		writeGenTree(t, dir, []genEntry{{path: p, kind: KindFile, data: pseudoRandom(size+i, seed+uint64(i))}})
		total += int64(size + i)
	}
	return total
}

func mustRel(t *testing.T, base, p string) string {
	t.Helper()
	rel, err := filepath.Rel(base, p)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// sameFiles compares two trees of regular files byte for byte.
func sameFiles(t *testing.T, got, want string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := mustRel(t, want, p)
		w, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		g, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s: got %d bytes (%s), want %d bytes (%s)", rel, len(g), digest.Of(g).Short(), len(w), digest.Of(w).Short())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("%s holds no files", want)
	}
}

// storedChunks sums up the file data in the store's packs: all of it,
// and what the on-disk index knows; unindexed counts the packs holding
// chunks the index does not know. No cas process may be running.
func (c casBin) storedChunks(t *testing.T) (stored, indexed int64, unindexed int) {
	t.Helper()
	idx, err := index.OpenBadger(filepath.Join(c.store, indexDir))
	if err != nil {
		t.Fatalf("open index: %v", err)
	}
	defer idx.Close()
	err = filepath.WalkDir(filepath.Join(c.store, storeDir, "packs"), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing pushed yet
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		id, err := digest.ParseHex(filepath.Base(p))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		blobs, err := format.ParsePack(id, data)
		if err != nil {
			return fmt.Errorf("pack %s: %w", p, err)
		}
		missing := false
		for _, b := range blobs {
			if b.Type != index.TypeData {
				continue
			}
			stored += int64(b.RawLen)
			_, ok, err := idx.Blob(b.ID)
			if err != nil {
				return err
			}
			if ok {
				indexed += int64(b.RawLen)
			} else {
				missing = true
			}
		}
		if missing {
			unindexed++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stored, indexed, unindexed
}

// TestCLIProcesses runs the cas binary: killed during a push, two pushes
// at once, and an index rebuilt from the store.
func TestCLIProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds cas and pushes hundreds of MiB; skipped with -short")
	}
	bin := buildCAS(t)

	t.Run("KillDuringPush", func(t *testing.T) {
		c := newCASStore(t, bin)
		data := filepath.Join(c.dir, "data")
		total := writeRandomFiles(t, data, 20, 15<<20, 1000)

		packs := c.killPushAfter(t, "data", 3)
		c.verify(t)
		// The index learns blobs only from segments: the killed push
		// wrote none, so none of its packs is trusted yet.
		stored, indexed, unindexed := c.storedChunks(t)
		t.Logf("killed the push with %d packs (%d bytes of chunks) stored, %d of them unindexed", packs, stored, unindexed)
		if indexed != 0 {
			t.Errorf("bytes indexed after the kill: got %d, want 0 (no segment names them)", indexed)
		}
		// The next push adopts them (a segment naming them) and resumes.
		skip := stored

		res := c.push(t, "data", "--name", "data")
		if res.Bytes != total {
			t.Errorf("second push bytes: got %d, want %d", res.Bytes, total)
		}
		if want := total - skip; res.NewBytes != want || res.NewBytes >= total {
			t.Errorf("second push new_bytes: got %d, want %d (the push resumes past the %d bytes indexed before the kill)", res.NewBytes, want, skip)
		}
		c.verify(t)

		c.mustRun(t, "restore", "--quiet", "data", "out")
		sameFiles(t, filepath.Join(c.dir, "out"), data)
		if got := strings.Fields(c.mustRun(t, "hash", "out"))[0]; got != res.Digest.String() {
			t.Errorf("cas hash of the restored tree: got %s, want %s", got, res.Digest)
		}
	})

	t.Run("ConcurrentPushes", func(t *testing.T) {
		base := t.TempDir()
		dirs := map[string]string{"a": filepath.Join(base, "a"), "b": filepath.Join(base, "b")}
		for i, name := range []string{"a", "b"} {
			writeRandomFiles(t, filepath.Join(dirs[name], "common"), 6, 6<<20, 2000)
			writeRandomFiles(t, filepath.Join(dirs[name], "own"), 2, 5<<20, uint64(3000+100*i))
		}
		want := map[string]digest.Digest{}
		for name, dir := range dirs {
			d, err := digest.Parse(strings.Fields(newCASStore(t, bin).mustRun(t, "hash", dir))[0])
			if err != nil {
				t.Fatal(err)
			}
			want[name] = d
		}
		tests := []struct {
			name string
			// holdIndex keeps the on-disk index locked, as a long-running
			// third process would: both pushes then work with in-memory
			// indexes and write packs, segments and refs at the same time.
			holdIndex bool
		}{
			{name: "index free"},
			{name: "index held by a third process", holdIndex: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for round := range 3 {
					c := newCASStore(t, bin)
					var held *index.Badger
					if tt.holdIndex {
						var err error
						if held, err = index.OpenBadger(filepath.Join(c.store, indexDir)); err != nil {
							t.Fatal(err)
						}
					}
					type result struct {
						name           string
						stdout, stderr bytes.Buffer
						err            error
					}
					results := []*result{{name: "a"}, {name: "b"}}
					done := make(chan *result)
					start := make(chan struct{})
					for _, res := range results {
						cmd := c.command("push", "--json", "--name", res.name, dirs[res.name])
						cmd.Stdout, cmd.Stderr = &res.stdout, &res.stderr
						go func() {
							<-start
							res.err = cmd.Run()
							done <- res
						}()
					}
					close(start)
					for range results {
						res := <-done
						if res.err != nil {
							t.Errorf("round %d: push %s: %v\n%s", round, res.name, res.err, res.stderr.String())
							continue
						}
						var out pushJSON
						if err := json.Unmarshal(res.stdout.Bytes(), &out); err != nil {
							t.Fatalf("round %d: push %s output %q: %v", round, res.name, res.stdout.String(), err)
						}
						t.Logf("round %d: push %s stored %d new bytes", round, res.name, out.NewBytes)
						if out.Digest != want[res.name] {
							t.Errorf("round %d: push %s digest: got %s, want %s", round, res.name, out.Digest, want[res.name])
						}
					}
					if held != nil {
						if err := held.Close(); err != nil {
							t.Fatal(err)
						}
					}
					var refs []Ref
					if err := json.Unmarshal([]byte(c.mustRun(t, "refs", "--json")), &refs); err != nil {
						t.Fatal(err)
					}
					got := map[string]digest.Digest{}
					for _, ref := range refs {
						got[ref.Name] = ref.Target
					}
					for name, d := range want {
						if got[name] != d {
							t.Errorf("round %d: ref %s: got %s, want %s", round, name, got[name], d)
						}
					}
					c.verify(t)
					// Each ref restores exactly.
					for name, dir := range dirs {
						out := filepath.Join(c.dir, "out-"+name)
						c.mustRun(t, "restore", "--quiet", name, out)
						sameFiles(t, out, dir)
					}
				}
			})
		}
	})

	t.Run("IndexRebuild", func(t *testing.T) {
		tests := []struct {
			name string
			kill bool // kill a push first, leaving packs no segment lists
		}{
			{name: "after a complete push"},
			{name: "after a killed push", kill: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := newCASStore(t, bin)
				data := filepath.Join(c.dir, "data")
				total := writeRandomFiles(t, data, 8, 10<<20, 4000)
				packs := 0
				if tt.kill {
					packs = c.killPushAfter(t, "data", 2)
				}
				if err := os.RemoveAll(filepath.Join(c.store, indexDir)); err != nil {
					t.Fatal(err)
				}
				var counts struct {
					Segments    int `json:"segments"`
					OrphanPacks int `json:"orphan_packs"`
				}
				out := c.mustRun(t, "index", "rebuild", "--json")
				if err := json.Unmarshal([]byte(out), &counts); err != nil {
					t.Fatalf("index rebuild --json output %q: %v", out, err)
				}
				if counts.OrphanPacks != packs {
					t.Errorf("orphan packs: got %d, want %d", counts.OrphanPacks, packs)
				}
				stored, skip, unindexed := c.storedChunks(t)
				if unindexed != 0 || skip != stored {
					t.Errorf("after the rebuild: got %d unindexed packs, %d of %d bytes indexed; want everything indexed", unindexed, skip, stored)
				}
				res := c.push(t, "data", "--name", "data")
				if want := total - skip; res.NewBytes != want {
					t.Errorf("push new_bytes: got %d, want %d (%d stored before)", res.NewBytes, want, skip)
				}

				// The index is a cache: rebuilt from the store, it restores by ref.
				if err := os.RemoveAll(filepath.Join(c.store, indexDir)); err != nil {
					t.Fatal(err)
				}
				c.mustRun(t, "index", "rebuild")
				c.mustRun(t, "restore", "--quiet", "data", "out")
				sameFiles(t, filepath.Join(c.dir, "out"), data)
				c.verify(t)
			})
		}
	})
}
