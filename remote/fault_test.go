package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/bits"
	"testing"
	"time"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
)

// TestFaultPassThrough checks that a Fault without hooks is invisible.
func TestFaultPassThrough(t *testing.T) {
	t.Parallel()
	remotetest.Run(t, func(t *testing.T) remote.Backend { return remote.NewFault(remote.NewMem()) })
}

func putBytes(t *testing.T, b remote.Backend, key string, content []byte) {
	t.Helper()
	if err := b.Put(t.Context(), key, bytes.NewReader(content), int64(len(content)), remote.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func TestFaultFlipBit(t *testing.T) {
	t.Parallel()
	content := make([]byte, 1000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	const at = 500
	f := remote.NewFault(remote.NewMem())
	putBytes(t, f, "packs/p", content)
	putBytes(t, f, "packs/q", content)
	f.FlipBitOnGet = func(key string) (int64, bool) { return at, key == "packs/p" }

	tests := []struct {
		name           string
		key            string
		offset, length int64
		flipped        int64 // index into the returned bytes, -1 for none
	}{
		{"whole", "packs/p", 0, -1, at},
		{"range covering", "packs/p", 400, 200, at - 400},
		{"range starting at", "packs/p", at, 1, 0},
		{"range before", "packs/p", 0, at, -1},
		{"range after", "packs/p", at + 1, -1, -1},
		{"other key", "packs/q", 0, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := f.Get(t.Context(), tt.key, tt.offset, tt.length)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			// Read one byte at a time so the flip must survive any split.
			got, err := io.ReadAll(io.LimitReader(oneByteReader{rc}, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			end := int64(len(content))
			if tt.length >= 0 {
				end = tt.offset + tt.length
			}
			want := content[tt.offset:end]
			if len(got) != len(want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
			var diffBits int
			diffAt := int64(-1)
			for i := range got {
				if d := got[i] ^ want[i]; d != 0 {
					diffBits += bits.OnesCount8(d)
					diffAt = int64(i)
				}
			}
			if tt.flipped < 0 && diffBits != 0 {
				t.Errorf("got %d flipped bits, want none", diffBits)
			}
			if tt.flipped >= 0 && (diffBits != 1 || diffAt != tt.flipped) {
				t.Errorf("got %d flipped bits (last at %d), want exactly one at %d", diffBits, diffAt, tt.flipped)
			}
		})
	}
}

// oneByteReader reads at most one byte per call.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestFaultTruncateGet(t *testing.T) {
	t.Parallel()
	content := bytes.Repeat([]byte("x"), 1000)
	f := remote.NewFault(remote.NewMem())
	putBytes(t, f, "packs/p", content)
	f.TruncateGet = func(string) (int64, bool) { return 100, true }

	tests := []struct {
		name           string
		offset, length int64
		wantN          int
		wantErr        error
	}{
		{"whole", 0, -1, 100, io.ErrUnexpectedEOF},
		{"range", 500, 300, 100, io.ErrUnexpectedEOF},
		{"short range", 0, 50, 50, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := f.Get(t.Context(), "packs/p", tt.offset, tt.length)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if len(got) != tt.wantN || !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadAll: got %d bytes, error %v; want %d bytes, error %v", len(got), err, tt.wantN, tt.wantErr)
			}
		})
	}
}

func TestFaultFailPut(t *testing.T) {
	t.Parallel()
	errDisk := errors.New("disk full")
	f := remote.NewFault(remote.NewMem())
	f.FailPut = func(key string) error {
		if key == "packs/bad" {
			return errDisk
		}
		return nil
	}
	err := f.Put(t.Context(), "packs/bad", bytes.NewReader([]byte("x")), 1, remote.PutOptions{})
	if !errors.Is(err, errDisk) {
		t.Errorf("Put(packs/bad): got error %v, want %v", err, errDisk)
	}
	if _, err := f.Backend.Stat(t.Context(), "packs/bad"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Stat(packs/bad) after failed Put: got error %v, want ErrNotFound", err)
	}
	putBytes(t, f, "packs/good", []byte("y"))
	if got := f.Puts.Load(); got != 2 {
		t.Errorf("Puts: got %d, want 2", got)
	}
}

func TestFaultFailPutAfter(t *testing.T) {
	t.Parallel()
	for _, inner := range []struct {
		name string
		b    func(t *testing.T) remote.Backend
	}{
		{"mem", func(*testing.T) remote.Backend { return remote.NewMem() }},
		{"local", func(t *testing.T) remote.Backend { return newLocal(t) }},
	} {
		t.Run(inner.name, func(t *testing.T) {
			f := remote.NewFault(inner.b(t))
			f.FailPutAfter = func(string) (int64, bool) { return 10, true }
			err := f.Put(t.Context(), "packs/p", bytes.NewReader(make([]byte, 100)), 100, remote.PutOptions{})
			if !errors.Is(err, remote.ErrInjected) {
				t.Errorf("Put: got error %v, want ErrInjected", err)
			}
			if _, err := f.Stat(t.Context(), "packs/p"); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("Stat after broken Put: got error %v, want ErrNotFound", err)
			}
		})
	}
}

func TestFaultFailOthers(t *testing.T) {
	t.Parallel()
	f := remote.NewFault(remote.NewMem())
	putBytes(t, f, "k", []byte("x"))
	errHook := errors.New("hook")
	fail := func(string) error { return errHook }
	f.FailGet, f.FailStat, f.FailList, f.FailDelete = fail, fail, fail, fail
	ctx := t.Context()
	if _, err := f.Get(ctx, "k", 0, -1); !errors.Is(err, errHook) {
		t.Errorf("Get: got error %v, want %v", err, errHook)
	}
	if _, err := f.Stat(ctx, "k"); !errors.Is(err, errHook) {
		t.Errorf("Stat: got error %v, want %v", err, errHook)
	}
	if err := f.List(ctx, "", func(remote.ObjectInfo) error { return nil }); !errors.Is(err, errHook) {
		t.Errorf("List: got error %v, want %v", err, errHook)
	}
	if err := f.Delete(ctx, "k"); !errors.Is(err, errHook) {
		t.Errorf("Delete: got error %v, want %v", err, errHook)
	}
	if _, err := f.Backend.Stat(ctx, "k"); err != nil {
		t.Errorf("Stat of inner after failed Delete: got error %v, want the object kept", err)
	}
	counts := []struct {
		name string
		got  int64
		want int64
	}{
		{"Puts", f.Puts.Load(), 1},
		{"Gets", f.Gets.Load(), 1},
		{"Stats", f.Stats.Load(), 1},
		{"Lists", f.Lists.Load(), 1},
		{"Deletes", f.Deletes.Load(), 1},
	}
	for _, c := range counts {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestFaultLatency(t *testing.T) {
	f := remote.NewFault(remote.NewMem())
	f.Latency = 20 * time.Millisecond
	start := time.Now()
	putBytes(t, f, "k", []byte("x"))
	if d := time.Since(start); d < f.Latency {
		t.Errorf("Put took %v, want at least %v", d, f.Latency)
	}

	f.Latency = time.Hour
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := f.Stat(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat with a context ending during the delay: got error %v, want DeadlineExceeded", err)
	}
}
