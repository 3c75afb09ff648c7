package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/remote"
)

// FAILS at 8fe7ba9: setPulledRef leaves a local ref alone when its target
// is the pulled one, whatever kind and size it records, so a local ref an
// older cas made on a lying remote ref's word is never made right.
// A local ref left by an older pull that took the bucket's word (target
// right, size 0) is not made right by pulling the honest ref again: the
// pull sees the same target and leaves the local ref as it is.
func TestHostilePullRepairsLyingLocalRef(t *testing.T) {
	w := newPullWorld(t)
	dir := t.TempDir()
	fd := memFactory(dir, memRemotes(map[string]*remote.Mem{"origin": w.origin}))
	runIn(t, fd, 0, "init")
	runIn(t, fd, 0, "pull", "-q", "one")
	honest := localRefs(t, fd)
	path := filepath.Join(dir, ".cas", "store", "refs", "one")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, hostileRefJSON(t, m, map[string]any{"size": 0}), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := localRefs(t, fd); len(got) != 1 || got[0].Size != 0 {
		t.Fatalf("local refs after writing size 0: %+v", got)
	}
	runIn(t, fd, 0, "pull", "-q", "one")
	if got := localRefs(t, fd); len(got) != 1 || got[0] != honest[0] {
		t.Errorf("local refs after pulling the honest ref again: %+v, want %+v", got, honest)
	}
}
