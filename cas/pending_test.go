package cas

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Two pending uploads exactly as cas wrote them before the library owned
// them (cli/sync.go's recordPending, cas 622e09d, `cas push a.txt --name
// hello` and `cas push d` with the default remote down): their names and
// bytes are the format docs/FORMAT.md describes.
const (
	oldPendingRefName = "bcafa6eac3187d7c3e8ab260216142a6.json"
	oldPendingRef     = `{
  "remote": "origin",
  "ref": "hello",
  "object": {
    "digest": "blake3:8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99",
    "kind": "file",
    "size": 6,
    "name": "a.txt"
  },
  "time": "2026-12-01T14:13:56.678Z"
}
`
	oldPendingDirName = "409366a4bc2bceccdc9438d93f03bf8c.json"
	oldPendingDir     = `{
  "remote": "origin",
  "object": {
    "digest": "blake3:eec89c5ac2350ba23c2caa95b7b0e29fad2ad267dfc5103606b85d18c880c283",
    "kind": "dir",
    "size": 1
  },
  "time": "2026-12-01T14:13:56.802Z"
}
`
)

func mustDigest(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func pendingPath(r *Repo, name string) string { return filepath.Join(r.Dir, pendingDir, name) }

// RecordPending writes the very bytes, under the very names, that cas
// wrote before: stores of either version read each other's entries.
func TestPendingFormatGolden(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	fake := clock.NewFake(time.Date(2026, 12, 1, 14, 13, 56, 678_400_000, time.UTC))
	r.Clock = fake
	ctx := t.Context()
	file := Object{Digest: mustDigest(t, "blake3:8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99"), Kind: KindFile, Size: 6, Name: "a.txt"}
	dir := Object{Digest: mustDigest(t, "blake3:eec89c5ac2350ba23c2caa95b7b0e29fad2ad267dfc5103606b85d18c880c283"), Kind: KindDir, Size: 1}
	if err := r.RecordPending(ctx, "origin", "hello", file); err != nil {
		t.Fatal(err)
	}
	fake.Advance(124 * time.Millisecond)
	if err := r.RecordPending(ctx, "origin", "", dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, want string }{{oldPendingRefName, oldPendingRef}, {oldPendingDirName, oldPendingDir}} {
		got, err := os.ReadFile(pendingPath(r, c.name))
		if err != nil {
			t.Fatalf("entry %s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("entry %s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
	ents, err := os.ReadDir(filepath.Join(r.Dir, pendingDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Errorf("pending/ holds %d names, want the 2 entries (no temp file left)", len(ents))
	}
}

// Entries written by the earlier cas are read as they were: oldest first,
// by remote; a temp file it left, and names not *.json, are no entries;
// one that does not read is reported and left alone.
func TestPendingReadsOldEntries(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	var warned []error
	r.Warn = func(err error) { warned = append(warned, err) }
	dir := filepath.Join(r.Dir, pendingDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		oldPendingDirName:            oldPendingDir,
		oldPendingRefName:            oldPendingRef,
		oldPendingRefName + ".tmp":   "{",
		"README":                     "not an entry",
		"0123456789abcdef.json":      "{\"remote\": \"origin\", \"object\": {}",
		"badref0123456789abcd.json":  `{"remote":"origin","ref":"../x","object":{"digest":"blake3:8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99","kind":"file","size":6},"time":"2026-12-01T14:00:00Z"}`,
		"badkind0123456789abc.json":  `{"remote":"origin","object":{"digest":"blake3:8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99","kind":"link","size":6},"time":"2026-12-01T14:00:00Z"}`,
		"otherremote0123456789.json": `{"remote":"backup","object":{"digest":"blake3:8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99","kind":"file","size":6},"time":"2026-12-01T15:00:00Z"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := r.PendingUploads("origin")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Remote+" "+p.Ref+" "+p.Object.Digest.Short()+" "+p.Object.Kind.String()+" "+p.Time.Format(time.RFC3339Nano))
	}
	want := []string{
		"origin hello 8e4c7c1b99db file 2026-12-01T14:13:56.678Z",
		"origin  eec89c5ac235 dir 2026-12-01T14:13:56.802Z",
	}
	if !slices.Equal(got, want) {
		t.Errorf("owed to origin:\ngot  %q\nwant %q", got, want)
	}
	if len(warned) != 3 {
		t.Errorf("warned %d times (%v), want the 3 entries that do not read", len(warned), warned)
	}
	all, err := r.PendingUploads("")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[2].Remote != "backup" {
		t.Errorf("owed to every remote: %d entries, want 3, the one to backup last", len(all))
	}
	// Cleared, an entry is gone; cleared twice, no error.
	for range 2 {
		if err := r.ClearPending(ps[0]); err != nil {
			t.Fatalf("ClearPending: %v", err)
		}
	}
	if _, err := os.Stat(pendingPath(r, oldPendingRefName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleared entry: stat = %v, want gone", err)
	}
}

// Renaming a remote moves what is owed to it, time and all, and nothing
// else.
func TestPendingRename(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	r.Clock = clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	ctx := t.Context()
	obj := Object{Digest: digest.Of([]byte("x")), Kind: KindFile, Size: 1}
	if err := r.RecordPending(ctx, "origin", "a", obj); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordPending(ctx, "backup", "a", obj); err != nil {
		t.Fatal(err)
	}
	if err := r.RenamePending("origin", "lab"); err != nil {
		t.Fatal(err)
	}
	all, err := r.PendingUploads("")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range all {
		got = append(got, p.Remote+" "+p.Ref+" "+p.Time.Format(time.RFC3339))
	}
	slices.Sort(got)
	if want := []string{"backup a 2026-12-01T09:00:00Z", "lab a 2026-12-01T09:00:00Z"}; !slices.Equal(got, want) {
		t.Errorf("after rename: got %q, want %q", got, want)
	}
	if _, err := os.Stat(pendingPath(r, pendingFile("lab", "a", obj.Digest))); err != nil {
		t.Errorf("the entry under its new name: %v", err)
	}
}

// An entry is checked before it is written: no caller can owe a remote
// what a reader would refuse.
func TestRecordPendingRefusesInvalid(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	obj := Object{Digest: digest.Of([]byte("x")), Kind: KindFile, Size: 1}
	for _, c := range []struct {
		remote, ref string
		obj         Object
		want        error
	}{
		{"a/b", "", obj, ErrBadRefName},
		{"", "", obj, ErrBadRefName},
		{"origin", "../up", obj, ErrBadRefName},
		{"origin", "", Object{Kind: KindFile, Size: 1}, ErrInvalidObject},
		{"origin", "", Object{Digest: obj.Digest, Kind: KindLink, Size: 1}, ErrInvalidObject},
	} {
		if err := r.RecordPending(t.Context(), c.remote, c.ref, c.obj); !errors.Is(err, c.want) {
			t.Errorf("RecordPending(%q, %q, %+v): got %v, want %v", c.remote, c.ref, c.obj, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(r.Dir, pendingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was written: %v", err)
	}
}

// The bug this file fixes: gc on the local store deleted the data of an
// upload owed to a remote that no ref names (an offline push without
// --name), after which sync could never upload it. What is owed is a
// root, with a manifest's whole closure, until it is cleared.
func TestGCKeepsPendingUploads(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	_, owed := pushTree(t, r, []genEntry{{path: "a.bin", kind: KindFile, data: pseudoRandom(200<<10, 11)}})
	man, roots, _ := pinFixture(t, r)
	_, garbage := pushTree(t, r, []genEntry{{path: "g.bin", kind: KindFile, data: pseudoRandom(200<<10, 12)}})
	if err := r.RecordPending(ctx, "origin", "", *owed); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordPending(ctx, "origin", "runs/r1", man); err != nil {
		t.Fatal(err)
	}
	kept := append([]Object{*owed, man}, roots...)
	keptPacks, err := r.closureOf(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}
	garbagePacks, err := r.closureOf(ctx, []Object{*garbage})
	if err != nil {
		t.Fatal(err)
	}

	rep, err := r.GC(ctx, nil, GCOptions{Grace: NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PendingUploads != 2 || rep.Roots != 2 || rep.Freed.Packs != len(garbagePacks) || rep.LivePacks != len(keptPacks) {
		t.Fatalf("gc: %+v, want 2 roots, both pending uploads, %d packs live and %d freed", rep, len(keptPacks), len(garbagePacks))
	}
	view, err := OpenRemoteOnly(ctx, r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range kept {
		vr, err := view.Verify(ctx, &o, o.Digest.Short(), nil)
		if err != nil || !vr.OK() {
			t.Errorf("verify %s after gc: %v %+v", o.Digest.Short(), err, vr)
		}
	}
	// What the owed data needs, sync can still upload.
	mem := remote.NewMem()
	if _, err := r.Publish(ctx, mem, "", *owed, nil); err != nil {
		t.Errorf("publish what was owed, after gc: %v", err)
	}

	// Done, the uploads keep nothing.
	ps, err := r.PendingUploads("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := r.ClearPending(p); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = r.GC(ctx, nil, GCOptions{Grace: NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PendingUploads != 0 || rep.Roots != 0 || rep.Freed.Packs != len(keptPacks) {
		t.Errorf("gc once cleared: %+v, want the %d packs freed", rep, len(keptPacks))
	}
}

// gc on a remote reads that remote alone: what the local store owes it is
// no root there.
func TestGCRemoteIgnoresPendingUploads(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	_, owed := pushTree(t, r, []genEntry{{path: "a.bin", kind: KindFile, data: pseudoRandom(100<<10, 13)}})
	mem := remote.NewMem()
	if _, err := r.Publish(ctx, mem, "", *owed, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordPending(ctx, "origin", "", *owed); err != nil {
		t.Fatal(err)
	}
	rep, err := r.GC(ctx, mem, GCOptions{Grace: NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PendingUploads != 0 || rep.Roots != 0 || rep.Freed.Packs == 0 {
		t.Errorf("gc on the remote: %+v, want no roots and its packs freed", rep)
	}
}

// A pending upload recorded after gc condemned its packs is honoured by
// the sweep, as a ref would be: the record leaves a keep marker.
func TestGCSweepSparesWhatIsOwed(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	fake := clock.NewFake(time.Now())
	r.Clock = fake
	ctx := t.Context()
	_, owed := pushTree(t, r, []genEntry{{path: "a.bin", kind: KindFile, data: pseudoRandom(200<<10, 14)}})
	packs, err := r.closureOf(ctx, []Object{*owed})
	if err != nil {
		t.Fatal(err)
	}
	fake.Advance(25 * time.Hour)
	if rep, err := r.GC(ctx, nil, GCOptions{}); err != nil || rep.Planned.Packs != len(packs) {
		t.Fatalf("mark: %+v %v, want the %d packs planned", rep, err, len(packs))
	}
	// An offline push of the same data stores nothing new, and owes it.
	if err := r.RecordPending(ctx, "origin", "", *owed); err != nil {
		t.Fatal(err)
	}
	if ks := keys(t, r.Backend, gc.KeepPrefix); len(ks) != 1 {
		t.Errorf("keep markers: %v, want one", ks)
	}
	fake.Advance(25 * time.Hour)
	rep, err := r.GC(ctx, nil, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed.Packs != 0 || rep.Spared != len(packs) {
		t.Errorf("sweep: %+v, want the %d packs spared", rep, len(packs))
	}
	for p := range packs {
		if _, err := r.Backend.Stat(ctx, format.PackKey(p)); err != nil {
			t.Errorf("owed pack %s: %v", p.Short(), err)
		}
	}
}

// An entry gc cannot read may name anything: gc stops rather than guess.
func TestGCStopsOnUnreadablePendingUpload(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	_, garbage := pushTree(t, r, []genEntry{{path: "g.bin", kind: KindFile, data: pseudoRandom(100<<10, 15)}})
	dir := filepath.Join(r.Dir, pendingDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0123456789abcdef.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GC(ctx, nil, GCOptions{Grace: NoGrace}); err == nil {
		t.Fatal("gc went ahead with an entry it cannot read")
	}
	if vr, err := r.Verify(ctx, garbage, "garbage", nil); err != nil || !vr.OK() {
		t.Errorf("gc deleted data although it stopped: %v %+v", err, vr)
	}
}
