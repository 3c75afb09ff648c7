package cas

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// torchZip writes a zip laid out as torch.save writes one: a pickle
// member, then one stored member per tensor storage. (cas/chunk tests
// where its cuts fall; this file, what a push stores with them.)
func torchZip(t testing.TB, pickle []byte, tensors [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	names := []string{"archive/data.pkl"}
	members := [][]byte{pickle}
	for i, tensor := range tensors {
		names = append(names, fmt.Sprintf("archive/data/%d", i))
		members = append(members, tensor)
	}
	names, members = append(names, "archive/version"), append(members, []byte("3\n"))
	for i, data := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: names[i], Method: zip.Store})
		if err == nil {
			_, err = w.Write(data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A fine-tuning run that freezes its backbone writes checkpoints whose
// backbone tensors never change. With cuts at tensor boundaries, a series
// of them stores little more than the bytes that are new in each; the
// issue's goal is at most 1.03 x the unique bytes plus metadata, in fewer
// chunks than fixed 64 KiB chunking would need.
func TestCheckpointSeriesDedup(t *testing.T) {
	t.Parallel()
	const (
		checkpoints = 4
		backbone    = 12      // frozen tensors
		tensorSize  = 1 << 20 // of a backbone tensor
		headSize    = 192 << 10
	)
	dir := t.TempDir()
	frozen := make([][]byte, backbone)
	for i := range frozen {
		frozen[i] = pseudoRandom(tensorSize+i*4099, uint64(100+i))
	}
	var unique, fileBytes int64
	for i := range frozen {
		unique += int64(len(frozen[i]))
	}
	var files []string
	for c := range checkpoints {
		// Interleave: each frozen tensor sits next to a trained one, as
		// layers do in a state dict; the optimizer moments follow.
		var tensors [][]byte
		for i := range frozen {
			tensors = append(tensors, frozen[i])
			if i%3 == 0 {
				h := pseudoRandom(headSize, uint64(10000+1000*c+i))
				tensors = append(tensors, h)
				unique += int64(len(h))
			}
		}
		for m := range 4 {
			o := pseudoRandom(headSize, uint64(50000+1000*c+m))
			tensors = append(tensors, o)
			unique += int64(len(o))
		}
		pickle := pseudoRandom(4096, uint64(90000+c))
		unique += int64(len(pickle))
		data := torchZip(t, pickle, tensors)
		fileBytes += int64(len(data))
		path := filepath.Join(dir, fmt.Sprintf("epoch%d.pt", c))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	stored := func(natural bool) (newBytes, chunks int64) {
		params, _ := NewChunkParams(1 << 20)
		store := filepath.Join(t.TempDir(), ".cas")
		if err := Init(store, params, time.Now()); err != nil {
			t.Fatal(err)
		}
		r, err := Open(context.Background(), store)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var opts PushOptions
		if !natural {
			opts.naturalCuts = func(io.ReaderAt, int64) []int64 { return nil }
		}
		for _, f := range files {
			res, err := r.Push(context.Background(), []string{f}, opts)
			if err != nil {
				t.Fatal(err)
			}
			newBytes += res.NewBytes
			chunks += res.NewChunks
		}
		return newBytes, chunks
	}
	metadata := int64(checkpoints * 4096) // zip headers and directories, generously
	withCuts, chunks := stored(true)
	plain, _ := stored(false)
	t.Logf("%d checkpoints, %d bytes; unique %d; stored with tensor cuts %d (%.3f x unique), plain CDC %d (%.3f x); %d chunks vs %d at fixed 64 KiB",
		checkpoints, fileBytes, unique, withCuts, float64(withCuts)/float64(unique), plain, float64(plain)/float64(unique), chunks, unique/(64<<10))
	if limit := int64(float64(unique)*1.03) + metadata; withCuts > limit {
		t.Errorf("stored %d bytes with tensor cuts, want at most %d (1.03 x unique + metadata)", withCuts, limit)
	}
	if chunks >= unique/(64<<10) {
		t.Errorf("%d chunks, want fewer than fixed 64 KiB chunking's %d", chunks, unique/(64<<10))
	}
	if plain <= withCuts {
		t.Errorf("plain chunking stored %d, tensor cuts %d: the cuts should help", plain, withCuts)
	}
}
