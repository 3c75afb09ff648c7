package cas

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/index"
)

func readConfigFile(t *testing.T, dir string) Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func writeConfigFile(t *testing.T, dir string, c Config) {
	t.Helper()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// floatCodecChunks pushes a BF16 safetensors file into r and counts its
// chunks stored with the float codec.
func floatCodecChunks(t *testing.T, r *Repo) int {
	t.Helper()
	src := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(src, bf16Safetensors(t, 64<<10, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(t.Context(), []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := r.fileChunks(t.Context(), res.Digest, res.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range chunks {
		if blobOf(t, r, c).Codec == index.CodecFloat {
			n++
		}
	}
	return n
}

// TestStoreVersion: a new store is of version 2; a store of version 1 is
// upgraded when opened (the rest of its config kept, byte for byte in
// meaning) and then stores tensors with the float codec; a version this
// cas does not know is refused in words, before anything is read.
func TestStoreVersion(t *testing.T) {
	t.Parallel()
	p, err := NewChunkParams(256 << 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("init", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), DirName)
		if err := Init(dir, p, time.Now()); err != nil {
			t.Fatal(err)
		}
		if v := readConfigFile(t, dir).Version; v != 2 {
			t.Fatalf("new store: version %d, want 2", v)
		}
	})
	t.Run("version 1 upgraded", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), DirName)
		if err := Init(dir, p, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		old := readConfigFile(t, dir)
		old.Version = 1
		writeConfigFile(t, dir, old)
		r, err := Open(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := readConfigFile(t, dir)
		want := old
		want.Version = 2
		if got != want || r.Config != want {
			t.Fatalf("after Open: config on disk %+v, in the Repo %+v; want %+v", got, r.Config, want)
		}
		if n := floatCodecChunks(t, r); n == 0 {
			t.Error("upgraded store: no chunk stored with the float codec")
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".config-*"))
		if len(left) != 0 {
			t.Errorf("temp files left: %v", left)
		}
	})
	t.Run("version 1 kept", func(t *testing.T) {
		t.Parallel()
		// A store Open could not upgrade (read-only) stays at version 1:
		// its pushes keep tensors to the rules of version 1.
		r := newStoreForTest(t, 256<<10)
		r.Config.Version = 1
		if n := floatCodecChunks(t, r); n != 0 {
			t.Errorf("store of version 1: %d chunks stored with the float codec, want none", n)
		}
	})
	for _, v := range []int{0, 3} {
		t.Run("version "+string(rune('0'+v)), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), DirName)
			if err := Init(dir, p, time.Now()); err != nil {
				t.Fatal(err)
			}
			c := readConfigFile(t, dir)
			c.Version = v
			writeConfigFile(t, dir, c)
			_, err := Open(t.Context(), dir)
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "is not supported by this cas") {
				t.Fatalf("Open of a store of version %d: %v, want ErrBadConfig, not supported", v, err)
			}
			if got := readConfigFile(t, dir).Version; got != v {
				t.Fatalf("config rewritten to version %d", got)
			}
		})
	}
}
