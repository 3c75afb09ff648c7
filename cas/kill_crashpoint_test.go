package cas

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillPoints kills real `cas push` and `cas gc` processes with
// SIGKILL at the Nth call of a system call that changes the store
// (strace -e inject=SYSCALL:signal=KILL:when=N), for N = 1, 2, … until the
// command completes without reaching it. After each kill the store must
// verify, the same command must then complete, and every ref and pin must
// restore byte for byte. strace counts calls per thread, so N is the Nth
// call of some thread: the sweep still reaches every call of the busiest
// one, and the others' early calls.
func TestKillPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cas and runs it many times")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("strace not found (%v): scripts/deps.sh installs it, and CI must run the kill points", err)
		}
		t.Skipf("strace not found (%v): scripts/deps.sh installs it", err)
	}
	const budget = 50 * time.Second
	start := time.Now()
	bin := buildCAS(t)
	c := newCASStore(t, bin)
	srcs := map[string]string{}
	gen := func(name string, entries []genEntry) string {
		src := filepath.Join(c.dir, "src", name)
		writeGenTree(t, src, entries)
		srcs[name] = src
		return src
	}
	c.push(t, gen("data", []genEntry{
		{path: "a.bin", kind: KindFile, data: pseudoRandom(1200<<10, 11)},
		{path: "sub/b.txt", kind: KindFile, data: []byte("bee\n")},
	}), "--name", "data")
	c.push(t, gen("v1", []genEntry{{path: "v.bin", kind: KindFile, data: pseudoRandom(300<<10, 12)}}), "--name", "grp/moving")
	c.push(t, gen("v2", []genEntry{{path: "v.bin", kind: KindFile, data: pseudoRandom(300<<10, 13)}}), "--name", "grp/moving")
	pinned := c.push(t, gen("pinned", []genEntry{{path: "p.bin", kind: KindFile, data: pseudoRandom(400<<10, 14)}}))
	c.mustRun(t, "pin", "paper", pinned.Digest.String(), "--local")
	for i := range 3 { // garbage for gc, a pack each
		c.push(t, gen(fmt.Sprintf("junk%d", i), []genEntry{{path: "j.bin", kind: KindFile, data: pseudoRandom(300<<10, uint64(20+i))}}))
	}
	newSrc := gen("new", []genEntry{
		{path: "fresh.bin", kind: KindFile, data: pseudoRandom(1500<<10, 15)},
		{path: "shared.bin", kind: KindFile, data: pseudoRandom(1200<<10, 11)},
		{path: "deep/x/y.txt", kind: KindFile, data: []byte("why\n")},
	})
	prior := c.store
	wants := map[string]string{"data": srcs["data"], "grp/moving": srcs["v2"], "pins/paper": srcs["pinned"]}

	commands := []struct {
		name  string
		args  []string
		after map[string]string // what its result must serve
	}{
		// Moving a ref replaces its file (a rename); new packs and the
		// segment are linked into place.
		{"push", []string{"push", "--quiet", "--name", "grp/moving", newSrc}, map[string]string{"grp/moving": newSrc}},
		{"gc", []string{"gc", "--grace", "0"}, nil},
	}
	syscalls := []struct {
		name, set string
		grow      bool // N grows geometrically: too many calls to try each
	}{
		{"unlink", "unlink,unlinkat,rmdir", false},
		{"rename", "rename,renameat,renameat2", false},
		{"link", "link,linkat", false},
		{"fsync", "fsync,fdatasync", false},
		{"write", "write,pwrite64", true},
	}
	sweeps := len(commands) * len(syscalls)
	total := 0
	for _, cmd := range commands {
		for _, sc := range syscalls {
			name := cmd.name + "/" + sc.name
			// An equal share of what is left of the budget.
			left := budget - time.Since(start)
			share := left / time.Duration(sweeps)
			sweeps--
			t.Run(name, func(t *testing.T) {
				until := time.Now().Add(share)
				kills := 0
				n := 1
				completed := false
				for ; ; n = next(n, sc.grow) {
					if time.Now().After(until) {
						t.Logf("%s: out of time at N=%d; the calls from there on are not tried", name, n)
						break
					}
					run := casBin{bin: bin, store: filepath.Join(t.TempDir(), DirName), dir: c.dir}
					if err := copyTree(prior, run.store); err != nil {
						t.Fatal(err)
					}
					args := append([]string{"-f", "-qq", "-o", "/dev/null", "-e", "trace=" + sc.set,
						"-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", sc.set, n), run.bin}, cmd.args...)
					x := exec.Command(strace, args...)
					x.Dir = run.dir
					x.Env = append(os.Environ(), "CAS_DIR="+run.store)
					var stderr bytes.Buffer
					x.Stderr = &stderr
					err := x.Run()
					if err == nil {
						completed = true // without reaching call N
						break
					}
					if !killedBySIGKILL(err) {
						t.Errorf("N=%d: %s under strace: %v, want death by SIGKILL or success\n%s", n, cmd.name, err, stderr.String())
						break
					}
					kills++
					checkKilledStore(t, run, fmt.Sprintf("killed at %s call %d", sc.name, n), cmd.args, wants, cmd.after)
				}
				total += kills
				if completed {
					t.Logf("%s: %d kill points; the command completes at N=%d", name, kills, n)
				} else {
					t.Logf("%s: %d kill points", name, kills)
				}
			})
		}
	}
	t.Logf("%d kill points in %s", total, time.Since(start).Round(time.Second))
}

// next is the N after n: every one, or about a quarter more.
func next(n int, grow bool) int {
	if grow {
		return n + max(1, n/4)
	}
	return n + 1
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && (ws.Signaled() && ws.Signal() == syscall.SIGKILL || ws.Exited() && ws.ExitStatus() == 128+int(syscall.SIGKILL))
}

// checkKilledStore checks a store that a kill left: `cas verify` passes,
// the command runs again to the end, and every ref and pin restores byte
// for byte (read in this process: a cas process per restore would cost
// most of the time budget).
func checkKilledStore(t *testing.T, c casBin, when string, args []string, wants, after map[string]string) {
	t.Helper()
	if out, errOut, code := c.run(t, "verify", "--quiet"); code != 0 {
		t.Errorf("%s: cas verify: exit %d, want 0\n%s%s", when, code, out, errOut)
		return
	}
	if out, errOut, code := c.run(t, args...); code != 0 {
		t.Errorf("%s: cas %s again: exit %d, want 0\n%s%s", when, strings.Join(args, " "), code, out, errOut)
		return
	}
	r, err := Open(t.Context(), c.store)
	if err != nil {
		t.Fatalf("%s: open the store: %v", when, err)
	}
	defer r.Close()
	srcs := maps.Clone(wants)
	maps.Copy(srcs, after) // a ref the command moves serves its new target
	var all []crashWant
	for ref, src := range srcs {
		want, err := snapshotDirE(src)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, crashWant{spec: ref, dir: want})
	}
	checkCrashStore(t, r, when+", then the command again", all)
}
