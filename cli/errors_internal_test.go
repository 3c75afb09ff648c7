package cli

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// The library's errors name no flags or commands; cli adds them, as a
// hint line below the one line of what went wrong.
func TestPrintErrorAddsHints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantStderr string
	}{
		{"restore into a directory that is not empty",
			fmt.Errorf("restore: %w", &cas.DestError{Path: "out", Err: cas.ErrDestNotEmpty}), exitError,
			"cas: restore: out: destination exists and is not empty\n" +
				"hint: restore --force writes into it: stored files replace what is in the way, other files stay\n"},
		{"restore onto a file",
			&cas.DestError{Path: "out/a.txt", Err: cas.ErrDestExists}, exitError,
			"cas: out/a.txt: destination exists\nhint: restore --force replaces it\n"},
		{"unknown remote", &remote.NoRemoteError{Name: "backup"}, exitError,
			"cas: no remote named backup\nhint: `cas remote list` shows them\n"},
		{"damaged index", fmt.Errorf("blob 1a2b: %w: the local index is damaged (boom)", cas.ErrIndexDamaged), exitError,
			"cas: blob 1a2b: corrupt record: the local index is damaged (boom)\n" +
				"hint: the local index is only a cache of the store: `cas index rebuild` mends it\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := printError(&stderr, tt.err); code != tt.wantCode {
				t.Errorf("got exit code %d, want %d", code, tt.wantCode)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("got stderr %q, want %q", got, tt.wantStderr)
			}
		})
	}
}

// A pack the store could not adopt is a warning that says where to look;
// other warnings read as the library wrote them.
func TestWarningText(t *testing.T) {
	t.Parallel()
	pack := digest.Of([]byte("pack"))
	orphan := &cas.OrphanPackError{Pack: pack, Err: fmt.Errorf("chunk 1a2b: damaged")}
	if got, want := warningText(orphan), orphan.Error()+"; `cas verify` reports it"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	other := fmt.Errorf("skipped segment 1a2b")
	if got := warningText(other); got != other.Error() {
		t.Errorf("got %q, want %q", got, other.Error())
	}
}
