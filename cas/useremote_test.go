package cas

import (
	"errors"
	"testing"

	"github.com/cas-ml/cas/remote"
)

// A remote whose first requests fail is not left half attached: a
// command that goes on after UseRemote failed (cas diff reads each side
// through readThrough) must not read through a remote that never
// answered, and its error must be the store's own.
func TestUseRemoteFailedLeavesNoRemote(t *testing.T) {
	refused := errors.New("refused")
	tests := []struct {
		name  string
		fault func(*remote.Fault)
	}{
		{"lookup check fails", func(f *remote.Fault) {
			f.FailStat = func(string) error { return refused }
		}},
		{"segment listing fails", func(f *remote.Fault) {
			f.FailList = func(string) error { return refused }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			mem := remote.NewMem()
			f := remote.NewFault(mem)
			tt.fault(f)
			r := newStoreForTest(t, 64<<10)
			if err := r.UseRemote(ctx, f); !errors.Is(err, refused) {
				t.Fatalf("UseRemote = %v, want the refusal", err)
			}
			if r.HasRemote() {
				t.Error("HasRemote after a failed UseRemote = true, want false")
			}
			gets := f.Gets.Load() + f.Stats.Load() + f.Lists.Load()
			if _, err := r.Resolve(ctx, "x"); err == nil {
				t.Error("ResolveRef of a missing ref succeeded")
			}
			if n := f.Gets.Load() + f.Stats.Load() + f.Lists.Load(); n != gets {
				t.Errorf("a read after a failed UseRemote made %d requests to that remote, want 0", n-gets)
			}
		})
	}
}
