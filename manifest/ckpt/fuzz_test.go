package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Run the fuzzers with a short minimisation time, or the first minutes go
// to minimising the large seeds (a fixture's data.pkl is 9 KB):
//
//	go test ./manifest/ckpt -run XXX -fuzz FuzzDecoder -fuzztime 20s -fuzzminimizetime 1s
//	go test ./manifest/ckpt -run XXX -fuzz FuzzInspect -fuzztime 20s -fuzzminimizetime 1s

// fuzzLimits keep each fuzz input cheap while still exercising every limit.
var fuzzLimits = Limits{
	MaxPickle:   1 << 20,
	MaxElements: 1 << 16,
	MaxMemo:     1 << 12,
	MaxDepth:    100,
	MaxBytes:    1 << 20,
	MaxBlob:     1 << 10,
	MaxGather:   1 << 20,
}

// seedPickles are the pickles of the fixtures and of CPython's protocols.
func seedPickles(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, name := range fixtures {
		b, err := os.ReadFile(filepath.Join(testdata, name))
		if err != nil {
			f.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			continue
		}
		for _, zf := range zr.File {
			if strings.HasSuffix(zf.Name, "data.pkl") {
				rc, err := zf.Open()
				if err != nil {
					f.Fatal(err)
				}
				pkl, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					f.Fatal(err)
				}
				seeds = append(seeds, pkl)
			}
		}
	}
	matches, _ := filepath.Glob(filepath.Join(testdata, "pickle", "*.pkl"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecoder: no pickle makes the Decoder or the graph walk panic, hang
// or exceed its limits; whatever decodes can be walked and encoded.
func FuzzDecoder(f *testing.F) {
	for _, s := range seedPickles(f) {
		f.Add(s)
	}
	f.Add([]byte("\x80\x02]q\x00h\x00a."))
	f.Add([]byte("(S'a\\x41'\nimymod\nC\n."))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(bytes.NewReader(b))
		d.Limits = fuzzLimits
		loader := &storageLoader{refs: map[string]*StorageRef{}}
		d.PersistentLoad = loader.load
		v, err := d.Decode()
		if err != nil {
			return
		}
		if d.Offset() > int64(len(b)) {
			t.Fatalf("offset %d past the input of %d bytes", d.Offset(), len(b))
		}
		_, _ = Canonical(v)
		in := &input{r: bytes.NewReader(nil), lim: fuzzLimits}
		rep := &Report{Format: FormatPickle}
		_ = in.inspectGraph(rep, v, map[string]region{})
		if _, err := json.Marshal(rep); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzInspect: no file makes Inspect panic or hang, and every report it
// returns is complete enough to print, lint and diff.
func FuzzInspect(f *testing.F) {
	for _, name := range fixtures {
		b, err := os.ReadFile(filepath.Join(testdata, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, []byte("abcd")))
	f.Add(npyFile("<u2", true, "(2, 3)", make([]byte, 12)))
	f.Add(npyFile("<f4", false, "(18446744073709551616, 4)", make([]byte, 4)))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[18446744073709551616,4],"data_offsets":[0,4]}}`, []byte("abcd")))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := inspectLimits(bytes.NewReader(b), int64(len(b)), "fuzz", fuzzLimits)
		if err != nil {
			if rep != nil {
				t.Fatal("a report with an error")
			}
			return
		}
		if rep.Tensors == nil || rep.RNG == nil {
			t.Fatal("nil tensors or RNG states in a report")
		}
		for _, tt := range rep.Tensors {
			if tt.Bytes < 0 || tt.Offset < 0 {
				t.Fatalf("negative size or offset: %+v", tt)
			}
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Fatal(err)
		}
		_ = Lint(rep)
		for _, c := range Diff(rep, rep).Tensors {
			if c.Op != OpChanged {
				t.Fatalf("a report diffed with itself: %s %s", c.Op, c.Path)
			}
		}
	})
}
