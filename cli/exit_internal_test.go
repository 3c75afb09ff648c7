package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
)

// Only a signal makes a command "interrupted" with exit status 130; a
// full disk is a failure that says so, whatever else it cancelled.
func TestExplainExitCodes(t *testing.T) {
	full := fmt.Errorf("write pack 1a2b3c4d5e6f: %w", &os.PathError{Op: "write", Path: "/p/.cas/store/packs/tmp-1", Err: syscall.ENOSPC})
	const fullLine = "cas: write pack 1a2b3c4d5e6f: write /p/.cas/store/packs/tmp-1: no space left on device\n" +
		"hint: the disk is full: free space and run the command again; nothing half-written was left\n"
	tests := []struct {
		name       string
		err        error
		signalled  bool
		wantCode   int
		wantStderr string
	}{
		{"full disk", full, false, exitError, fullLine},
		{"full disk beside a cancellation", fmt.Errorf("push: %w", errors.Join(full, context.Canceled)), false, exitError,
			"cas: push: write pack 1a2b3c4d5e6f: write /p/.cas/store/packs/tmp-1: no space left on device; context canceled\n" +
				"hint: the disk is full: free space and run the command again; nothing half-written was left\n"},
		{"full disk, then a signal", full, true, exitError, fullLine},
		{"signal", fmt.Errorf("push: %w", context.Canceled), true, exitCancel, "cas: interrupted\n"},
		{"cancelled without a signal", fmt.Errorf("push: %w", context.Canceled), false, exitError,
			"cas: stopped before finishing, though not interrupted: a step failed and its error was lost\n" +
				"hint: run the command again; if it stops the same way, check the free disk space and report it\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.signalled {
				cancel()
			}
			var stderr bytes.Buffer
			code := printError(&stderr, explain(ctx, &Factory{}, tt.err))
			if code != tt.wantCode {
				t.Errorf("got exit code %d, want %d", code, tt.wantCode)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("got stderr %q, want %q", got, tt.wantStderr)
			}
		})
	}
}

// A push whose store fills up fails with exit status 1 and one line
// (and a hint), never as "interrupted", however far it got.
func TestPushFullDisk(t *testing.T) {
	tests := []struct {
		name string
		size int // bytes of data pushed
	}{
		{"one pack", 200 << 10},
		// The pack writer fails while files are still being read: its
		// error, not the readers' cancellation, is the one reported.
		{"several packs", 48 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, ".cas")
			params, _ := cas.NewChunkParams(64 << 10)
			if err := cas.Init(dir, params, time.Now()); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, tt.size)
			rng := rand.New(rand.NewPCG(uint64(tt.size), 1))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(tmp, "big.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := cas.Open(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			fault := remote.NewFault(r.Backend)
			fault.FailPut = func(key string) error {
				if strings.HasPrefix(key, "packs/") {
					return &os.PathError{Op: "write", Path: filepath.Join(dir, "store", key), Err: syscall.ENOSPC}
				}
				return nil
			}
			r.Backend = fault
			var stdout, stderr bytes.Buffer
			f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
				Clock: clock.Real(), Getenv: func(string) string { return "" }, WorkDir: func() (string, error) { return tmp, nil }}
			f.repo = r
			code := Run(t.Context(), f, []string{"push", "-q", filepath.Join(tmp, "big.bin"), "--name", "big"})
			if code != exitError || stdout.Len() != 0 {
				t.Fatalf("push onto a full disk: exit %d, stdout %q, stderr %q; want exit 1 and nothing on stdout", code, stdout.String(), stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "cas: ") || !strings.HasPrefix(lines[1], "hint: ") {
				t.Fatalf("stderr = %q, want one error line and a hint", stderr.String())
			}
			want := "no space left on device"
			if !strings.Contains(lines[0], want) {
				t.Errorf("error line %q, want it to say %q", lines[0], want)
			}
		})
	}
}

// A missing object is said to be missing from the local store with no
// remote to read it from only when the store has no remote.
func TestExplainMissingObject(t *testing.T) {
	missing := fmt.Errorf("chunk 1a2c6cd4ac50: pack fc827a06c4b7: %w", remote.ErrNotFound)
	tests := []struct {
		name       string
		remotes    bool
		err        error
		wantStderr string
	}{
		{"no remote", false, missing,
			"cas: chunk 1a2c6cd4ac50: pack fc827a06c4b7: object not found (not in the local store, and no remote is configured to read it from)\n" +
				"hint: `cas verify` lists what the store lacks; `cas remote add` a remote that holds it, or push the data again\n"},
		{"a remote", true, missing, "cas: chunk 1a2c6cd4ac50: pack fc827a06c4b7: object not found\n"},
		{"an unknown ref", false, fmt.Errorf("ref x: %w", cas.ErrNotFound),
			"cas: ref x: not found\nhint: `cas refs` lists names; a digest prefix needs at least 8 hex characters\n"},
		// A name that was found but whose data is not: no word of names,
		// and no word of pull where there is no remote to pull from.
		{"a missing chunk", false, fmt.Errorf("file 1a2c6cd4ac50: chunk fc827a06c4b7: %w", cas.ErrDataNotFound),
			"cas: file 1a2c6cd4ac50: chunk fc827a06c4b7: not found\nhint: `cas verify` lists what the store lacks; `cas remote add` a remote that holds it, or push the data again\n"},
		{"a missing chunk, a remote", true, fmt.Errorf("file 1a2c6cd4ac50: chunk fc827a06c4b7: %w", cas.ErrDataNotFound),
			"cas: file 1a2c6cd4ac50: chunk fc827a06c4b7: not found\nhint: `cas verify` lists what the store lacks; `cas pull REF` brings it from a remote\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), ".cas")
			params, _ := cas.NewChunkParams(64 << 10)
			if err := cas.Init(dir, params, time.Now()); err != nil {
				t.Fatal(err)
			}
			r, err := cas.Open(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if tt.remotes {
				if err := r.AddRemote(remote.Config{Name: "origin", URL: "s3://bucket", Connections: 1}); err != nil {
					t.Fatal(err)
				}
			}
			var stderr bytes.Buffer
			code := printError(&stderr, explain(t.Context(), &Factory{repo: r}, tt.err))
			if code != exitError {
				t.Errorf("got exit code %d, want %d", code, exitError)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("got stderr %q, want %q", got, tt.wantStderr)
			}
		})
	}
}
