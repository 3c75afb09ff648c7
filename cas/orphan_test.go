package cas

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cas-ml/cas/cas/format"
)

// A pack that no segment names and that fails its checks is not adopted:
// the push tells Warn with an *OrphanPackError naming the pack, in words
// of the library alone (cli adds what to run).
func TestOrphanPackNotAdoptedWarns(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	var mu sync.Mutex
	var warned []error
	r.Warn = func(err error) { mu.Lock(); warned = append(warned, err); mu.Unlock() }
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, []genEntry{{path: "model.bin", kind: KindFile, data: pseudoRandom(300<<10, 11)}})
	pushKilledBeforeSegment(t, r, src)
	packs := storeFiles(t, r.Dir, format.PackPrefix)
	for _, p := range packs {
		flipAt(t, p, 1000)
	}
	_, _ = r.Push(t.Context(), []string{src}, PushOptions{})

	rotten := map[string]bool{}
	for _, p := range packs {
		rotten[filepath.Base(p)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	found := 0
	for _, err := range warned {
		var oe *OrphanPackError
		if !errors.As(err, &oe) {
			continue
		}
		found++
		if oe.Err == nil || !rotten[oe.Pack.Hex()] {
			t.Errorf("warning %v: want a rotten pack and why it was not adopted", err)
		}
	}
	if found != len(packs) {
		t.Errorf("got %d OrphanPackError warnings (all: %v), want %d, one per rotten pack", found, warned, len(packs))
	}
}
