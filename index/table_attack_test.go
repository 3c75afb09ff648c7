package index

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/digest"
)

// Attacks on the index's tables (table.go): a process killed, a disk
// full, a file damaged or edited by hand. Each test states what the
// index must answer; a failure is a defect of the tables, not of the test.

// flushTable writes what tb holds in memory to a run, as a put over
// maxMem would.
func flushTable(t *testing.T, tb *table) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if err := tb.flushLocked(); err != nil {
		t.Fatal(err)
	}
}

// A write that failed part way (the disk filled up during the log's write
// call, which then wrote part of the frame) must not take later writes
// with it: after the failed write, the table takes writes again and
// returns success for them, so they must be found after a reopen.
//
// The disk-full short write is real: a child process lowers its file
// size limit (RLIMIT_FSIZE, which cuts a write short exactly as ENOSPC
// does on a full disk) just below the end of the frame, then raises it
// again, as space comes back.
func TestAttackLogShortWriteLosesLaterWrites(t *testing.T) {
	// Not parallel: a child process forked while another test closes an
	// index would hold that index's lock (the child shares the locked
	// file until it execs), and that test's reopen would find it busy.
	dir := filepath.Join(t.TempDir(), "t")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttackShortWriteChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CAS_ATTACK_TABLE_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	for i, want := range map[int]bool{0: true, 1: false, 2: true} {
		v, ok, err := tb.get(tkey(i))
		if err != nil || ok != want || ok && !bytes.Equal(v, []byte{byte(i)}) {
			t.Errorf("key %d after reopen: %x %v %v; want found %v (key 2's write returned success)", i, v, ok, err, want)
		}
	}
}

// TestAttackShortWriteChild is the child of the test above: it writes
// key 0, fails to write key 1 for want of space (a short write), then
// writes key 2 once space is back, and exits without closing (killed).
func TestAttackShortWriteChild(t *testing.T) {
	dir := os.Getenv("CAS_ATTACK_TABLE_DIR")
	if dir == "" {
		t.Skip("the child of TestAttackLogShortWriteLosesLaterWrites")
	}
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.put([]kv{{tkey(0), []byte{0}}}); err != nil {
		t.Fatal(err)
	}
	st, err := tb.log.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Past the limit the kernel sends SIGXFSZ, whose default kills; a
	// write then fails with EFBIG, after writing what fitted.
	signal.Ignore(syscall.SIGXFSZ)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	full := lim
	lim.Cur = uint64(st.Size()) + 20 // the frame of key 1 is 2+4+32+2+200 bytes
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	err = tb.put([]kv{{tkey(1), bytes.Repeat([]byte{1}, 200)}})
	if rerr := unix.Setrlimit(unix.RLIMIT_FSIZE, &full); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("a write past the file size limit succeeded")
	}
	// The kernel wrote the 20 bytes the limit let through; the table
	// must have cut them off again.
	if st2, _ := tb.log.Stat(); st2.Size() != st.Size() {
		t.Fatalf("log of %d bytes after the short write, want %d: the partial frame cut off", st2.Size(), st.Size())
	}
	if err := tb.put([]kv{{tkey(2), []byte{2}}}); err != nil {
		t.Fatalf("write once space is back: %v", err)
	}
	if v, ok, err := tb.get(tkey(2)); err != nil || !ok || !bytes.Equal(v, []byte{2}) {
		t.Fatalf("key 2 after its write: %x %v %v", v, ok, err)
	}
	// No close: killed.
}

// A log whose first frame is damaged while frames follow it is not "a
// write the process was killed in" (that one is always the last): the
// records after it were written, and the badger marks that vouch for
// them (a segment read) were committed after them. Replay stops at the
// damaged frame and drops them silently, so the index keeps a segment
// mark whose blobs it no longer has: the segment is never read again,
// and a restore finds no location for a chunk the store holds. The open
// must either find the blob or forget the mark (reset, so the segments
// are read again).
func TestAttackLogDamagedMidFrameKeepsMarks(t *testing.T) {
	t.Parallel()
	checkLogDamage(t, func(t *testing.T, data []byte) {
		frame := len(data) / 2 // two frames of the same size
		data[frame-1] ^= 0x10  // the last byte of the first frame's payload (a's type byte)
	})
}

// checkLogDamage writes blobs a and b to the blobs table in a frame each,
// marks a segment read, has damage change the log's bytes, and checks
// that the next open finds blob b (written after the damage) or has
// forgotten the mark.
func checkLogDamage(t *testing.T, damage func(t *testing.T, data []byte)) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	seg := digest.Of([]byte("segment"))
	a := Blob{ID: digest.Of([]byte("a")), Pack: digest.Of([]byte("pack a")), Length: 1, RawLen: 1}
	b := Blob{ID: digest.Of([]byte("b")), Pack: digest.Of([]byte("pack b")), Length: 1, RawLen: 1}
	for _, bl := range []Blob{a, b} {
		if err := x.AddBlobs(bl.Pack, []Blob{bl}); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.MarkStoreSegment(seg); err != nil {
		t.Fatal(err)
	}
	log := x.blobs.log.Name()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	damage(t, data)
	if err := os.WriteFile(log, data, 0o644); err != nil {
		t.Fatal(err)
	}
	y, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	marked, err := y.HasSegment(seg)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := y.Blob(b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if marked && (!ok || got != b) {
		t.Errorf("segment still marked read, but blob b (written after the damaged frame) = %+v, %v; want found, or the mark gone", got, ok)
	}
}

// A bit flipped in a run's records (not its footer) is caught by the
// bucket's CRC on a lookup. A merge reads the same records through
// runIter, which checks no CRC: the flipped byte is copied into the
// merged run under a fresh, valid CRC, and from then on the lookup
// returns the damaged value as sound. The damage must stay visible: the
// merge fails (ErrCorrupt), or the lookup does.
func TestAttackMergeLaundersDamage(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 50) }
	for i := range mergeWidth - 1 { // one key per run: the run's only record
		if err := tb.put([]kv{{tkey(i), val(i)}}); err != nil {
			t.Fatal(err)
		}
		flushTable(t, tb)
	}
	first := tb.runs[0].path
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b[digest.Size+1+10] ^= 0x01 // a byte of key 0's value
	if err := os.WriteFile(first, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if tb, err = openTable(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	if _, _, err := tb.get(tkey(0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get from the damaged run before a merge: %v, want ErrCorrupt", err)
	}
	// The eighth run: the eight merge in the background.
	if err := tb.put([]kv{{tkey(mergeWidth - 1), val(mergeWidth - 1)}}); err != nil {
		t.Fatal(err)
	}
	flushTable(t, tb)
	tb.waitMerges()
	merged, mergeErr := len(tb.runs) == 1, tb.mergeErr
	tb.mu.Unlock()
	v, ok, err := tb.get(tkey(0))
	if merged && err == nil && ok && !bytes.Equal(v, val(0)) {
		t.Errorf("after the merge, key 0 = %x (merge error %v, lookup error nil): damaged bytes served as sound; want ErrCorrupt", v, mergeErr)
	}
}

// A damaged length in a run's records must not make a reader allocate
// what the length says: the run is a few hundred bytes, and the reader
// (an iteration, a merge) must fail with ErrCorrupt having allocated
// about that, not the 256 MiB a flipped varint claims.
func TestAttackDamagedRunLengthAllocation(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.put([]kv{{tkey(0), bytes.Repeat([]byte{7}, 50)}, {tkey(1), bytes.Repeat([]byte{8}, 50)}}); err != nil {
		t.Fatal(err)
	}
	flushTable(t, tb)
	run := tb.runs[0].path
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(run)
	if err != nil {
		t.Fatal(err)
	}
	// The first record's length, 50 (one byte), becomes 2^28-1 (four
	// bytes, over the value's first three): the footer is untouched.
	copy(b[digest.Size:], []byte{0xff, 0xff, 0xff, 0x7f})
	if err := os.WriteFile(run, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if tb, err = openTable(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = tb.each(func(digest.Digest, []byte) error { return nil })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("each over a damaged run: %v, want ErrCorrupt", err)
	}
	// Other tests run in parallel: allow them some; 256 MiB is not some.
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("each over a run of %d bytes allocated %d MiB", len(b), got>>20)
	}
}

// A manifest is text a user can edit, and its numbers are 16 hex digits:
// "log ffffffffffffffff" parses, and the next log number wraps to 0.
// The writes that go to log-0000000000000000 return success, and the next
// open, replaying only the logs numbered from the manifest's on, deletes
// it with them. A number the table cannot count past must be refused as
// damage (the index is then reset), not accepted.
func TestAttackManifestMaxSeq(t *testing.T) {
	t.Parallel()
	for name, line := range map[string]string{
		"log": "log ffffffffffffffff",
		"run": "log 0000000000000001\nrun ffffffffffffffff 0",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "t")
			tb, err := openTable(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.put([]kv{{tkey(0), []byte("a run")}}); err != nil {
				t.Fatal(err)
			}
			flushTable(t, tb)
			run := tb.runs[0].path
			if err := tb.close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(run, filepath.Join(dir, runName(1<<64-1))); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tableManifest), []byte(manifestHeader+"\n"+line+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tb, err = openTable(dir, 1<<20)
			if errors.Is(err, ErrCorrupt) {
				return // refused: the index is reset and read again
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.put([]kv{{tkey(1), []byte("written")}}); err != nil {
				t.Fatal(err)
			}
			if err := tb.close(); err != nil {
				t.Fatal(err)
			}
			if tb, err = openTable(dir, 1<<20); err != nil {
				t.Fatal(err)
			}
			defer tb.close()
			if v, ok, err := tb.get(tkey(1)); err != nil || !ok || string(v) != "written" {
				t.Errorf("a write that returned success, after reopen: %q %v %v (logs: %v)", v, ok, err, listDir(t, dir))
			}
		})
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// openTables answers a damaged table in two steps: it removes the table
// and makes it afresh, then resets the index. A process killed between
// the two must not leave the marks of segments whose blobs the table
// lost: the segments would never be read again. The next open must still
// find the blob, or have forgotten the mark.
//
// Not parallel: it sets testHook, which every open runs.
func TestAttackKilledBetweenTableRecreateAndReset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	seg := digest.Of([]byte("segment"))
	a := Blob{ID: digest.Of([]byte("a")), Pack: digest.Of([]byte("pack")), Length: 1, RawLen: 1}
	if err := x.AddBlobs(a.Pack, []Blob{a}); err != nil {
		t.Fatal(err)
	}
	if err := x.MarkStoreSegment(seg); err != nil {
		t.Fatal(err)
	}
	flushTable(t, x.blobs)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// The blobs table is damaged (its run cut short); the open that finds
	// it makes it afresh and is killed there, before the reset.
	runs, _ := filepath.Glob(filepath.Join(dir, blobsDir, "run-*"))
	if len(runs) != 1 {
		t.Fatalf("runs %v, want 1", runs)
	}
	if err := os.Truncate(runs[0], 10); err != nil {
		t.Fatal(err)
	}
	errKilled := errors.New("killed")
	testHook = func(step string) error {
		if step == "table made" {
			return errKilled
		}
		return nil
	}
	_, err = OpenBadger(dir)
	testHook = nil
	if !errors.Is(err, errKilled) {
		t.Fatalf("open of the damaged index: %v, want it killed after making the table afresh", err)
	}
	if _, err := os.Stat(filepath.Join(dir, blobsDir, tableManifest)); err != nil {
		t.Fatalf("the table was not made afresh: %v", err)
	}

	y, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	marked, err := y.HasSegment(seg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := y.Blob(a.ID); err != nil || marked && !ok {
		t.Errorf("segment marked read %v, its blob found %v (%v): want the blob, or the mark gone", marked, ok, err)
	}
}

// Not a defect found, a property nothing else pins: a table of deletions
// only (no older run: a flush drops them all) writes a run of no record,
// which opens again, and a deletion kept over an older run hides its key
// across a reopen and across the merge that drops it.
func TestAttackTableOfDeletionsOnly(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.put([]kv{{k: tkey(0)}, {k: tkey(1)}}); err != nil {
		t.Fatal(err)
	}
	flushTable(t, tb)
	if len(tb.runs) != 1 || tb.runs[0].n != 0 {
		t.Fatalf("runs %d, records %d; want one run of none", len(tb.runs), tb.runs[0].n)
	}
	if err := tb.put([]kv{{tkey(2), []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	flushTable(t, tb)
	if err := tb.put([]kv{{k: tkey(2)}}); err != nil { // over an older run: kept
		t.Fatal(err)
	}
	flushTable(t, tb)
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	if tb, err = openTable(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	checkTableModel(t, tb, map[digest.Digest][]byte{}, 3)
	for i := range mergeWidth - 3 { // up to eight runs: merged, from the oldest
		if err := tb.put([]kv{{tkey(10 + i), []byte{byte(i + 1)}}}); err != nil {
			t.Fatal(err)
		}
		flushTable(t, tb)
	}
	tb.waitMerges()
	nruns, n := len(tb.runs), tb.runs[0].n
	tb.mu.Unlock()
	if nruns != 1 || n != mergeWidth-3 {
		t.Fatalf("after the merge: %d runs, the first of %d records; want 1 of %d (deletions dropped)", nruns, n, mergeWidth-3)
	}
	model := map[digest.Digest][]byte{}
	for i := range mergeWidth - 3 {
		model[tkey(10+i)] = []byte{byte(i + 1)}
	}
	checkTableModel(t, tb, model, 10+mergeWidth)
}

// Every open starts a new log, and only a flush removes the old ones: a
// table that is opened and closed without reaching 4 MiB of records (the
// files table of a store of small files never does; every read-only
// command opens both) keeps one more empty log per command, each listed
// and read at every open after. What an idle table holds on disk must
// not grow with the number of times it was opened.
func TestAttackEmptyLogsPileUp(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.put([]kv{{tkey(0), []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	const opens = 50
	for range opens {
		if tb, err = openTable(dir, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := tb.close(); err != nil {
			t.Fatal(err)
		}
	}
	if tb, err = openTable(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	checkTableModel(t, tb, map[digest.Digest][]byte{tkey(0): []byte("v")}, 1)
	if names := listDir(t, dir); len(names) > 4 {
		t.Errorf("after %d opens of an idle table, %d files in it (%s … %s); want a few", opens, len(names), names[0], names[len(names)-1])
	}
}

// Not a defect found, a property nothing else pins: a second process
// opening a busy index touches none of the tables' files. An open clears
// every file its manifest does not name, which in the process holding
// the index may be a run being written (a flush's, a merge's): the lock
// must be taken before any table is opened.
func TestAttackBusyOpenLeavesTablesAlone(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	a := Blob{ID: digest.Of([]byte("a")), Pack: digest.Of([]byte("pack")), Length: 1, RawLen: 1}
	if err := x.AddBlobs(a.Pack, []Blob{a}); err != nil {
		t.Fatal(err)
	}
	writing := filepath.Join(dir, blobsDir, runName(1<<40)) // a run being written
	if err := os.WriteFile(writing, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, filepath.Join(dir, blobsDir))
	if _, err := OpenBadger(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("second open: %v, want ErrBusy", err)
	}
	if after := listDir(t, filepath.Join(dir, blobsDir)); !slices.Equal(after, before) {
		t.Errorf("a busy open changed the table: %v, was %v", after, before)
	}
	if got, ok, err := x.Blob(a.ID); err != nil || !ok || got != a {
		t.Errorf("blob after a busy open: %+v %v %v", got, ok, err)
	}
}

// Blobs and chunk lists learned from a remote's segments only are marked
// as the remote's before they are recorded: a process killed between the
// two steps must leave the marks, not records without them, which would
// make a push count them as stored.
//
// Not parallel: it sets testHook.
func TestRemoteMarksComeFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := Blob{ID: digest.Of([]byte("a")), Pack: digest.Of([]byte("pack")), Length: 1, RawLen: 1}
	f := digest.Of([]byte("file"))
	errKilled := errors.New("killed")
	testHook = func(step string) error {
		if step == "marked" {
			return errKilled
		}
		return nil
	}
	errB := x.AddRemoteBlobs(a.Pack, []Blob{a}, []digest.Digest{a.ID, a.Pack})
	errF := x.AddRemoteFiles(map[digest.Digest][]digest.Digest{f: {a.ID, a.ID}})
	testHook = nil
	if !errors.Is(errB, errKilled) || !errors.Is(errF, errKilled) {
		t.Fatalf("AddRemoteBlobs: %v, AddRemoteFiles: %v; want both killed after marking", errB, errF)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	for _, id := range []digest.Digest{a.ID, a.Pack, f} {
		if ok, err := y.Remote(id); err != nil || !ok {
			t.Errorf("%s: remote mark %v (%v), want it written before the records", id.Short(), ok, err)
		}
	}
	// Then the records, now that the kill is over: still the remote's.
	if err := y.AddRemoteBlobs(a.Pack, []Blob{a}, []digest.Digest{a.ID, a.Pack}); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := y.Blob(a.ID); err != nil || !ok || got != a {
		t.Fatalf("blob: %+v %v %v", got, ok, err)
	}
	if ok, err := y.Remote(a.ID); err != nil || !ok {
		t.Errorf("remote mark after the records: %v %v, want kept", ok, err)
	}
}
