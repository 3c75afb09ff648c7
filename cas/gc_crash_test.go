package cas

import (
	"errors"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestGCKilled kills real `cas gc --grace 0` processes with SIGKILL at
// growing delays, so that the kills land in the mark, in the segment
// rewrite and among the deletions; after each, every ref and pin must
// verify, and a last gc must leave exactly the live packs. (TestGCInterrupted
// stops a sweep at each of its steps deterministically.)
func TestGCKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds cas and runs it many times")
	}
	bin := buildCAS(t)
	c := newCASStore(t, bin)
	keep := filepath.Join(c.dir, "keep")
	writeRandomFiles(t, keep, 4, 300<<10, 1)
	c.push(t, keep, "--name", "keep")
	pinned := filepath.Join(c.dir, "pinned")
	writeRandomFiles(t, pinned, 3, 200<<10, 2)
	p := c.push(t, pinned)
	c.mustRun(t, "pin", "paper", p.Digest.String(), "--local")
	live := c.packCount(t)
	// Garbage: many unreferenced pushes, a pack each.
	for i := range 40 {
		d := filepath.Join(c.dir, "junk", strconv.Itoa(i))
		writeRandomFiles(t, d, 1, 100<<10, uint64(100+i))
		c.push(t, d)
	}
	if n := c.packCount(t); n != live+40 {
		t.Fatalf("%d packs, want %d", n, live+40)
	}
	check := func(when string) {
		t.Helper()
		for _, ref := range []string{"keep", "paper"} {
			if out, errOut, code := c.run(t, "verify", ref, "--quiet"); code != 0 {
				t.Fatalf("%s: cas verify %s: exit %d\n%s%s", when, ref, code, out, errOut)
			}
		}
		c.verify(t)
	}
	killed := 0
	var left []int
	for _, delay := range []time.Duration{0, 5, 10, 20, 30, 45, 60, 90} {
		cmd := c.command("gc", "--grace", "0")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay * time.Millisecond)
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			killed++
		}
		check("after a gc killed at " + (delay * time.Millisecond).String())
		left = append(left, c.packCount(t))
	}
	if killed == 0 {
		t.Fatal("no gc was killed before it ended: the kills tested nothing")
	}
	c.mustRun(t, "gc", "--grace", "0")
	if n := c.packCount(t); n != live {
		t.Errorf("%d packs after the last gc, want the %d live ones", n, live)
	}
	check("after the last gc")
	// What a killed gc left behind under gc/ is only records of deletions.
	gcDir := filepath.Join(c.store, storeDir, "gc")
	_ = filepath.WalkDir(gcDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Base(filepath.Dir(p)) != "done" {
			t.Errorf("%s left after a complete gc", p[len(gcDir)-2:])
		}
		return nil
	})
	t.Logf("%d of 8 gc processes killed before they ended; packs after each: %v (live %d)", killed, left, live)
}
