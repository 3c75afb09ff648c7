package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/digest"
)

// Second attacks on the index's tables, on the fixes of the first
// (table_attack_test.go): each test states what the index must answer; a
// failure is a defect of the index, not of the test.

// A frame whose length is damaged to claim more bytes than its log holds
// is taken for "the last write, cut short by a kill", whatever follows
// it: replay stops there, the frames after it are dropped (and the open
// then cuts them off the log for good), while the badger marks that
// vouch for them stay. It is the damage TestAttackLogDamagedMidFrameKeepsMarks
// makes, moved from the payload to the length: the open must either find
// blob b or forget the segment mark (reset).
func TestAttack2LogDamagedLengthKeepsMarks(t *testing.T) {
	t.Parallel()
	checkLogDamage(t, func(t *testing.T, data []byte) {
		// One bit flipped: a high bit of the first frame's length, which
		// then claims more than the log holds.
		data[2] ^= 0x01
		if n := binary.LittleEndian.Uint32(data); uint64(len(data)-frameHeaderLen) >= uint64(n) {
			t.Fatalf("precondition: the damaged length %d does not overrun the log of %d bytes", n, len(data))
		}
	})
}

// openTables drops every mark, the remote marks among them, as soon as it
// finds one table missing or damaged, and the other table is only reset
// later (Reset, after the first is made afresh). The remote marks are the
// one kind whose absence vouches for something: a blob or chunk list
// recorded without one counts as the store's own. A process killed in
// between (here: the files table missing, killed once it is made afresh)
// leaves the blobs table holding a blob only a remote's segment named,
// with no mark: no later open resets (both tables open, no segment mark),
// a push counts the blob as stored (AnyRemote is false, so it asks
// nothing), and reading the remote's segment again keeps what the index
// knows (cas keepKnown: known and not marked). Reset itself drops the
// marks before it resets the tables, the same window.
//
// Not parallel: it sets testHook.
func TestAttack2RemoteMarksDroppedBeforeTablesReset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	seg := digest.Of([]byte("a remote's segment"))
	a := Blob{ID: digest.Of([]byte("a")), Pack: digest.Of([]byte("the remote's pack")), Length: 1, RawLen: 1}
	if err := x.AddRemoteBlobs(a.Pack, []Blob{a}, []digest.Digest{a.ID, a.Pack}); err != nil {
		t.Fatal(err)
	}
	if err := x.MarkSegment(seg); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, filesDir)); err != nil {
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
		t.Fatalf("open with the files table missing: %v, want it killed after making the table afresh", err)
	}
	y, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	_, ok, err := y.Blob(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := y.Remote(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	anyMark, err := y.AnyRemote()
	if err != nil {
		t.Fatal(err)
	}
	if ok && (!remote || !anyMark) {
		t.Errorf("blob only a remote holds: recorded %v, its remote mark %v (any remote mark %v); want the mark, or the record gone", ok, remote, anyMark)
	}
}

// Not a defect found, a property nothing else pins: a merge reads its runs
// through diskIter, a window of readAhead bytes at a time, and writes
// exactly the run that writeDiskRun makes of the same records from
// memory, byte for byte, when buckets straddle windows and some buckets are larger than a
// window (a file of a few thousand chunks has a chunk list of over
// 64 KiB). Newer records of a key win, and deletions are dropped.
func TestAttack2MergeAcrossWindowsMatchesMemory(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[digest.Digest][]byte{}
	const keys = 1200
	tb, err := openTable(filepath.Join(t.TempDir(), "t"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	nBound := 0
	for run := range mergeWidth {
		var recs []kv
		for range 200 {
			k := tkey(rng.IntN(keys))
			var v []byte
			switch n := rng.IntN(100); {
			case n < 10 && run > 0:
				// a deletion
			case n < 12:
				v = bytes.Repeat([]byte{byte(run)}, readAhead+rng.IntN(2*readAhead))
			default:
				v = bytes.Repeat([]byte{byte(n)}, 100+rng.IntN(3000))
			}
			recs = append(recs, kv{k, v})
			if len(v) == 0 {
				delete(model, k)
			} else {
				model[k] = v
			}
		}
		if err := tb.put(recs); err != nil {
			t.Fatal(err)
		}
		tb.mu.RLock()
		nBound += len(tb.mem)
		tb.mu.RUnlock()
		flushTable(t, tb)
	}
	tb.waitMerges()
	runs, mergeErr := slices.Clone(tb.runs), tb.mergeErr
	tb.mu.Unlock()
	if mergeErr != nil || len(runs) != 1 || runs[0].level != 1 {
		t.Fatalf("after %d flushes: %d runs, merge error %v; want one run of level 1", mergeWidth, len(runs), mergeErr)
	}
	checkTableModel(t, tb, model, keys)

	// The same records, from memory, written as the merge writes them (its
	// record count bounded by the sum of the runs', as the merge's is).
	keysIn := make([]digest.Digest, 0, len(model))
	for k := range model {
		keysIn = append(keysIn, k)
	}
	slices.SortFunc(keysIn, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	ref, err := writeDiskRun(filepath.Join(t.TempDir(), "ref"), 1, 1, nBound, []source{&memIter{keys: keysIn, mem: model, i: -1}}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.drop()
	got, err := os.ReadFile(runs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(ref.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("merged run: %d bytes, %s; one flush of the same records: %d bytes, %s", len(got), digest.Of(got).Short(), len(want), digest.Of(want).Short())
	}
	var big bool
	for b := range runs[0].crcs {
		big = big || runs[0].fan[b+1]-runs[0].fan[b] > readAhead
	}
	if !big {
		t.Error("precondition: no bucket of the merged run is larger than a window")
	}
}

// A file in a table's directory whose name parseSeq takes for a log (its
// hex digits in upper case: strconv reads them) is replayed under the
// name logName gives its number, in lower case, which on Linux is no
// file: the open fails with a plain error, not ErrCorrupt, so the index
// is not reset, and every command fails until the user finds and removes
// the file (a rebuild opens the index first). A stray file must be
// removed, replayed, or refused as damage.
func TestAttack2UpperCaseLogName(t *testing.T) {
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
	if err := os.WriteFile(filepath.Join(dir, "log-00000000000000AB"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err = openTable(dir, 1<<20)
	if errors.Is(err, ErrCorrupt) {
		return // refused: the index is reset and read again
	}
	if err != nil {
		t.Fatalf("open with a stray log-00000000000000AB: %v; want it opened, or ErrCorrupt (a reset)", err)
	}
	defer tb.close()
	checkTableModel(t, tb, map[digest.Digest][]byte{tkey(0): []byte("v")}, 1)
}

// An open that finds more than maxLogs logs writes their records to a run
// (a store written before 65863cf has a log per command that wrote). On
// a full disk that run cannot be written, and the open fails: every
// command, a read-only one or a gc that would free space among them,
// fails for as long as the disk is full, though the open needs to write
// nothing (the records replay from the logs, as they did before). The
// flush at open is housekeeping: its failure must leave the table open.
//
// The full disk is real, as in TestAttackLogShortWriteLosesLaterWrites: a
// child process lowers its file size limit below the run's size.
func TestAttack2FullDiskOpenWithManyLogs(t *testing.T) {
	// Not parallel: a child process forked while another test closes an
	// index would hold that index's lock (the child shares the locked
	// file until it execs), and that test's reopen would find it busy.
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.put([]kv{{tkey(0), bytes.Repeat([]byte{0}, 1000)}}); err != nil {
		t.Fatal(err)
	}
	first := tb.logs[0]
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	// As the code of before left them: a log per command, each with a
	// record of its own.
	for i := 1; i <= maxLogs; i++ {
		frame := logFrame(kv{tkey(i), bytes.Repeat([]byte{byte(i)}, 1000)})
		if err := os.WriteFile(filepath.Join(dir, logName(first+uint64(i))), frame, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttack2FullDiskOpenChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CAS_ATTACK2_TABLE_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("open on a full disk: %v\n%s", err, out)
	}
}

// logFrame is the log frame put writes for recs.
func logFrame(recs ...kv) []byte {
	var payload []byte
	for _, r := range recs {
		payload = appendRecord(payload, r.k, r.v)
	}
	return encodeFrame(payload)
}

// TestAttack2FullDiskOpenChild is the child of the test above: with no
// room for a file of more than 4 KiB (each log is less, their run more),
// it opens the table and reads every record.
func TestAttack2FullDiskOpenChild(t *testing.T) {
	dir := os.Getenv("CAS_ATTACK2_TABLE_DIR")
	if dir == "" {
		t.Skip("the child of TestAttack2FullDiskOpenWithManyLogs")
	}
	signal.Ignore(syscall.SIGXFSZ)
	lim := unix.Rlimit{Cur: 4096, Max: 4096}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer tb.close()
	for i := 0; i <= maxLogs; i++ {
		if v, ok, err := tb.get(tkey(i)); err != nil || !ok || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 1000)) {
			t.Errorf("key %d: %d bytes, %v, %v", i, len(v), ok, err)
		}
	}
}
