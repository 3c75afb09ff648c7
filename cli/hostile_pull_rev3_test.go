package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/cli"
	"github.com/cas-ml/cas/remote"
)

// pullWorld is a bucket holding refs data (a directory), one (a file) and
// runs/r1 (a run with data as its input), and the honest refs' fields.
type pullWorld struct {
	origin *remote.Mem
	fields map[string]map[string]any
	honest map[string][]byte
}

func newPullWorld(t *testing.T) *pullWorld {
	t.Helper()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Enough files for several packs' worth of reads.
	for p, data := range map[string]string{"data/a.txt": "hello, remote\n", "data/b.txt": "bravo\n", "one.txt": "one file\n", "two.txt": "two files\n"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := &pullWorld{origin: remote.NewMem(), fields: map[string]map[string]any{}, honest: map[string][]byte{}}
	fs := memFactory(src, memRemotes(map[string]*remote.Mem{"origin": w.origin}))
	runIn(t, fs, 0, "init")
	runIn(t, fs, 0, "push", "-q", "--name", "data", filepath.Join(src, "data"))
	runIn(t, fs, 0, "push", "-q", "--name", "one", filepath.Join(src, "one.txt"))
	runIn(t, fs, 0, "push", "-q", "--name", "two", filepath.Join(src, "two.txt"))
	runIn(t, fs, 0, "run", "--name", "r1", "--input", "data="+filepath.Join(src, "data"), "--", "true")
	for _, name := range []string{"data", "one", "two", "runs/r1"} {
		b, err := remote.ReadAll(t.Context(), w.origin, "refs/"+name)
		if err != nil {
			t.Fatal(err)
		}
		w.honest[name] = b
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		w.fields[name] = m
	}
	return w
}

func (w *pullWorld) put(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := w.origin.Put(t.Context(), "refs/"+name, strings.NewReader(string(b)), int64(len(b)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

type localRef struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	Type   string `json:"type"`
}

func localRefs(t *testing.T, f *cli.Factory) []localRef {
	t.Helper()
	open := f.Remote
	f.Remote = noRemote
	defer func() { f.Remote = open }()
	out, _ := runIn(t, f, 0, "refs", "--json")
	var got []localRef
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("refs --json: %v in %q", err, out)
	}
	return got
}

// A pull cancelled part way (the context ends at the second pack read)
// exits 130 and leaves no local ref; pulled again, it completes, and the
// run verifies without the bucket.
func TestHostilePullCancelledLeavesNoRef(t *testing.T) {
	w := newPullWorld(t)
	fault := remote.NewFault(w.origin)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reads := 0
	fault.FailGet = func(key string) error {
		if strings.HasPrefix(key, "packs/") {
			reads++
			if reads == 2 {
				cancel()
				return context.Canceled
			}
		}
		return nil
	}
	open := func(context.Context, *cas.Repo, string) (remote.Backend, *remote.Config, error) {
		return fault, &remote.Config{Name: "origin", URL: "s3://origin"}, nil
	}
	fd := memFactory(t.TempDir(), open)
	runIn(t, fd, 0, "init")
	if code := cli.Run(ctx, fd, []string{"pull", "-q", "r1"}); code != 130 {
		t.Errorf("cas pull r1, cancelled at the second pack read (%d reads): exit %d, want 130; stderr %q", reads, code, fd.IO.ErrOut.(*strings.Builder).String())
	}
	if reads < 2 {
		t.Fatalf("the pull read %d packs; the test needs at least 2", reads)
	}
	if got := localRefs(t, fd); len(got) != 0 {
		t.Errorf("refs after the cancelled pull: %+v, want none", got)
	}
	fault.FailGet = nil
	runIn(t, fd, 0, "pull", "-q", "r1")
	fd.Remote = noRemote
	runIn(t, fd, 0, "verify", "runs/r1")
}

// The bucket moves a ref between two pulls: to a lie about the same
// target (refused, the local ref kept as it was), then to an honest other
// target (the local ref moves, its kind and size the data's).
func TestHostilePullTwiceBucketChanges(t *testing.T) {
	w := newPullWorld(t)
	fd := memFactory(t.TempDir(), memRemotes(map[string]*remote.Mem{"origin": w.origin}))
	runIn(t, fd, 0, "init")
	runIn(t, fd, 0, "pull", "-q", "one")
	before := localRefs(t, fd)

	w.put(t, "one", hostileRefJSON(t, w.fields["one"], map[string]any{"size": 0}))
	_, errs := runIn(t, fd, 1, "pull", "-q", "one")
	if !strings.Contains(errs, "not the file of 0 bytes it is named as") {
		t.Errorf("second pull of a ref lying about data already here: stderr %q, want the mismatch named", errs)
	}
	if got := localRefs(t, fd); len(got) != 1 || got[0] != before[0] {
		t.Errorf("local refs after the refused pull: %+v, want %+v", got, before)
	}

	w.put(t, "one", hostileRefJSON(t, w.fields["two"], map[string]any{"name": "one"}))
	runIn(t, fd, 0, "pull", "-q", "one")
	got := localRefs(t, fd)
	want := localRef{Name: "one", Target: w.fields["two"]["target"].(string), Kind: "file", Size: int64(w.fields["two"]["size"].(float64))}
	if len(got) != 1 || got[0] != want {
		t.Errorf("local refs after the bucket moved one to two's data: %+v, want [%+v]", got, want)
	}
}

// A remote ref to a run that says nothing of its type (an older cas, or
// a bucket that drops it) still pulls the run's closure, and the local
// ref records it as a manifest, as Pull found it.
func TestHostilePullUntypedRunRecordsManifest(t *testing.T) {
	w := newPullWorld(t)
	w.put(t, "runs/r1", hostileRefJSON(t, w.fields["runs/r1"], map[string]any{"type": nil}))
	fd := memFactory(t.TempDir(), memRemotes(map[string]*remote.Mem{"origin": w.origin}))
	runIn(t, fd, 0, "init")
	runIn(t, fd, 0, "pull", "-q", "r1")
	got := localRefs(t, fd)
	if len(got) != 1 || got[0].Type != "manifest" {
		t.Errorf("local refs after pulling an untyped run ref: %+v, want runs/r1 of type manifest", got)
	}
	fd.Remote = noRemote
	runIn(t, fd, 0, "verify", "runs/r1")
}
