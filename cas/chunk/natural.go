package chunk

import (
	"archive/zip"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"io"
	"slices"
	"strings"
)

// Model files have natural boundaries: where each tensor's data starts and
// ends. Cutting chunks there too (and content-defined inside large
// tensors) lets an unchanged tensor dedup whatever its neighbours do: a
// fine-tuning run that freezes a backbone stores the backbone once.
// Identity never depends on this; a file cas cannot read as one of these
// formats is chunked as plain bytes.

// Limits on what boundary detection reads, whatever a file claims.
const (
	maxBoundaries      = 1 << 20
	maxSafetensorsHead = 100 << 20
	minModelFile       = 1 << 10
)

var (
	zipMagic         = []byte("PK\x03\x04")
	npyMagic         = []byte("\x93NUMPY")
	safetensorsStart = []byte("{")
)

// A Region is a stretch [Start, End) of a model file that holds the
// elements of one tensor (or storage) of a float type, named as
// safetensors names it: F32, BF16, F16, F64, F8_E4M3 or F8_E5M2.
type Region struct {
	Start, End int64
	DType      string
}

// A Layout is what cas knows of a model file's structure: its natural
// cuts (sorted offsets strictly inside the file) and the regions of
// float tensor data among them, sorted, apart, each beginning and ending
// at a cut or at the file's ends; a chunk that never crosses a cut is
// thus either inside one region or outside all of them.
type Layout struct {
	Cuts    []int64
	Regions []Region
}

// DTypeAt returns the element type of the region holding the bytes
// [start, end) of the file, or "" when no region holds them all.
func (l *Layout) DTypeAt(start, end int64) string {
	i, _ := slices.BinarySearchFunc(l.Regions, start, func(r Region, off int64) int {
		switch {
		case r.End <= off:
			return -1
		case r.Start > off:
			return 1
		}
		return 0
	})
	if i < len(l.Regions) && l.Regions[i].Start <= start && end <= l.Regions[i].End {
		return l.Regions[i].DType
	}
	return ""
}

// NaturalCuts returns the sorted offsets, strictly inside (0, size), at
// which a torch zip checkpoint, an npz, an npy or a safetensors file
// changes from one tensor (or header) to the next; nil for anything else
// or anything malformed (NaturalLayout's cuts).
func NaturalCuts(r io.ReaderAt, size int64) []int64 {
	return NaturalLayout(r, size).Cuts
}

// NaturalLayout returns the natural cuts of a model file and the regions
// of float tensor data it can type: a safetensors tensor's dtype, an npy
// array's descr (also inside an npz), the storage types a torch zip
// checkpoint's data.pkl gives its data/N members. It reads at most the
// file's headers (a zip's central directory, the header of each npy
// member, a data.pkl of up to 16 MiB, a safetensors JSON header of up to
// 100 MiB).
func NaturalLayout(r io.ReaderAt, size int64) Layout {
	if size < minModelFile {
		return Layout{}
	}
	head := make([]byte, 16)
	if _, err := r.ReadAt(head, 0); err != nil {
		return Layout{}
	}
	var l Layout
	switch {
	case bytes.HasPrefix(head, zipMagic):
		l = zipLayout(r, size)
	case bytes.HasPrefix(head, npyMagic):
		l = npyLayout(r, 0, size)
	case bytes.HasPrefix(head[8:], safetensorsStart):
		l = safetensorsLayout(r, head, size)
	}
	l.Cuts = cleanCuts(l.Cuts, size)
	l.Regions = cleanRegions(l.Regions, size)
	return l
}

// cleanCuts sorts, dedups and drops offsets outside (0, size).
func cleanCuts(cuts []int64, size int64) []int64 {
	if len(cuts) == 0 {
		return nil
	}
	slices.Sort(cuts)
	out := cuts[:0]
	for _, c := range slices.Compact(cuts) {
		if c > 0 && c < size {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// cleanRegions sorts the regions and drops empty ones, those out of
// (0, size) and any that overlap another (a malformed file).
func cleanRegions(rs []Region, size int64) []Region {
	slices.SortFunc(rs, func(a, b Region) int { return cmp.Compare(a.Start, b.Start) })
	out := rs[:0]
	for _, r := range rs {
		if r.Start >= r.End || r.Start < 0 || r.End > size {
			continue
		}
		if len(out) > 0 && out[len(out)-1].End > r.Start {
			return nil
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// zipLayout puts a boundary at the start and end of every member's stored
// data (torch writes tensors as stored, 64-byte aligned members), types
// a torch checkpoint's data/N members by its data.pkl, and reads the
// header of each stored .npy member (an npz).
func zipLayout(r io.ReaderAt, size int64) Layout {
	zr, err := zip.NewReader(r, size)
	if err != nil || len(zr.File) > maxBoundaries/2 {
		return Layout{}
	}
	var l Layout
	offs := make([]int64, len(zr.File))
	for i, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil || off < 0 || off > size || int64(f.CompressedSize64) > size-off {
			return Layout{}
		}
		offs[i] = off
		l.Cuts = append(l.Cuts, off, off+int64(f.CompressedSize64))
	}
	types := torchStorageTypes(zr)
	for i, f := range zr.File {
		if f.Method != zip.Store || f.CompressedSize64 != f.UncompressedSize64 {
			continue
		}
		end := offs[i] + int64(f.CompressedSize64)
		if dir, key, ok := strings.Cut(f.Name, "/data/"); ok && types[dir] != nil {
			if dt := types[dir][key]; dt != "" {
				l.Regions = append(l.Regions, Region{offs[i], end, dt})
			}
			continue
		}
		if strings.HasSuffix(f.Name, ".npy") {
			sub := npyLayout(r, offs[i], end)
			l.Cuts = append(l.Cuts, sub.Cuts...)
			l.Regions = append(l.Regions, sub.Regions...)
		}
	}
	return l
}

// torchStorageTypes reads the data.pkl of each archive directory of a
// torch zip checkpoint (there is one) and returns, per directory, the
// element type of each storage key.
func torchStorageTypes(zr *zip.Reader) map[string]map[string]string {
	var out map[string]map[string]string
	for _, f := range zr.File {
		dir, ok := strings.CutSuffix(f.Name, "/data.pkl")
		if !ok || strings.Contains(dir, "/") || f.UncompressedSize64 > maxPickleLen {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			continue
		}
		pkl, err := io.ReadAll(io.LimitReader(rc, maxPickleLen+1))
		_ = rc.Close()
		if err != nil {
			continue
		}
		if types := storageTypes(pkl); len(types) > 0 {
			if out == nil {
				out = map[string]map[string]string{}
			}
			out[dir] = types
		}
	}
	return out
}

// npyDTypes maps the little-endian float descrs of numpy to Region's
// type names.
var npyDTypes = map[string]string{"<f4": "F32", "<f2": "F16", "<f8": "F64"}

// npyLayout puts a boundary where the array data of the npy file at
// [base, end) of the file starts, and types the data by its descr.
func npyLayout(r io.ReaderAt, base, end int64) Layout {
	head := make([]byte, 12)
	if end-base < int64(len(head)) {
		return Layout{}
	}
	if _, err := r.ReadAt(head, base); err != nil || !bytes.HasPrefix(head, npyMagic) {
		return Layout{}
	}
	var hlen, at int64
	switch head[6] {
	case 1:
		hlen, at = int64(binary.LittleEndian.Uint16(head[8:])), 10
	case 2, 3:
		hlen, at = int64(binary.LittleEndian.Uint32(head[8:])), 12
	default:
		return Layout{}
	}
	data := base + at + hlen
	if data > end {
		return Layout{}
	}
	l := Layout{Cuts: []int64{data}}
	if hlen > 4<<10 {
		return l
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, base+at); err != nil {
		return l
	}
	if dt := npyDTypes[npyDescr(hdr)]; dt != "" {
		l.Regions = []Region{{data, end, dt}}
	}
	return l
}

// npyDescr returns the 'descr' of an npy header, a Python dict literal
// such as {'descr': '<f4', 'fortran_order': False, 'shape': (3,), }.
func npyDescr(hdr []byte) string {
	_, rest, ok := bytes.Cut(hdr, []byte("'descr':"))
	if !ok {
		return ""
	}
	rest = bytes.TrimLeft(rest, " ")
	if len(rest) < 2 || rest[0] != '\'' {
		return ""
	}
	d, _, ok := bytes.Cut(rest[1:], []byte("'"))
	if !ok {
		return ""
	}
	return string(d)
}

// safetensorsLayout reads the JSON header and puts a boundary at each
// tensor's data_offsets, typing the tensors of float dtypes.
func safetensorsLayout(r io.ReaderAt, head []byte, size int64) Layout {
	n := int64(binary.LittleEndian.Uint64(head))
	if n <= 0 || n > maxSafetensorsHead || 8+n > size {
		return Layout{}
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return Layout{}
	}
	var tensors map[string]json.RawMessage
	if json.Unmarshal(hdr, &tensors) != nil || len(tensors) > maxBoundaries/2 {
		return Layout{}
	}
	base := 8 + n
	l := Layout{Cuts: []int64{base}}
	for name, raw := range tensors {
		if name == "__metadata__" {
			continue
		}
		var t struct {
			DType   string  `json:"dtype"`
			Offsets []int64 `json:"data_offsets"`
		}
		if json.Unmarshal(raw, &t) != nil || len(t.Offsets) != 2 || t.Offsets[0] < 0 || t.Offsets[1] < t.Offsets[0] || base+t.Offsets[1] > size {
			return Layout{}
		}
		l.Cuts = append(l.Cuts, base+t.Offsets[0], base+t.Offsets[1])
		switch t.DType {
		case "F32", "BF16", "F16", "F64", "F8_E4M3", "F8_E5M2":
			l.Regions = append(l.Regions, Region{base + t.Offsets[0], base + t.Offsets[1], t.DType})
		}
	}
	return l
}

// CutsWithin returns the lengths of the chunks of data, the bytes of a
// file from offset base on, never letting a chunk cross one of natural,
// sorted file offsets such as NaturalCuts returns. Each stretch between
// two of them is chunked on its own, as Cuts chunks a whole input.
func (c *Chunker) CutsWithin(data []byte, base int64, natural []int64) []int {
	if len(natural) == 0 {
		return c.Cuts(data)
	}
	var out []int
	pos := int64(0)
	// Clipped, so that the appended end never writes into the caller's array.
	for _, nc := range append(slices.Clip(natural), base+int64(len(data))) {
		end := nc - base
		if end <= pos || end > int64(len(data)) {
			continue
		}
		out = append(out, c.Cuts(data[pos:end])...)
		pos = end
	}
	return out
}
