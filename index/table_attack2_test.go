package index

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
	// One bit flipped: the top bit of the first frame's length (one byte,
	// 83), which makes the varint run on into the CRC's first byte.
	data[0] ^= 0x80
	if n, w := binary.Uvarint(data); w <= 0 || uint64(len(data)-w-4) >= n {
		t.Fatalf("precondition: the damaged length %d (%d bytes) does not overrun the log of %d bytes", n, w, len(data))
	}
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
