package chunk

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"slices"
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

// NaturalCuts returns the sorted offsets, strictly inside (0, size), at
// which a torch zip checkpoint, an npz, an npy or a safetensors file
// changes from one tensor (or header) to the next; nil for anything else
// or anything malformed. It reads at most the file's headers (a zip's
// central directory, a safetensors JSON header of up to 100 MiB).
func NaturalCuts(r io.ReaderAt, size int64) []int64 {
	if size < minModelFile {
		return nil
	}
	head := make([]byte, 16)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil
	}
	var cuts []int64
	switch {
	case bytes.HasPrefix(head, zipMagic):
		cuts = zipCuts(r, size)
	case bytes.HasPrefix(head, npyMagic):
		cuts = npyCuts(head, size)
	case bytes.HasPrefix(head[8:], safetensorsStart):
		cuts = safetensorsCuts(r, head, size)
	}
	return cleanCuts(cuts, size)
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

// zipCuts puts a boundary at the start and end of every member's stored
// data (torch writes tensors as stored, 64-byte aligned members).
func zipCuts(r io.ReaderAt, size int64) []int64 {
	zr, err := zip.NewReader(r, size)
	if err != nil || len(zr.File) > maxBoundaries/2 {
		return nil
	}
	var cuts []int64
	for _, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil || off < 0 || off > size || int64(f.CompressedSize64) > size-off {
			return nil
		}
		cuts = append(cuts, off, off+int64(f.CompressedSize64))
	}
	return cuts
}

// npyCuts puts a boundary where the array data starts.
func npyCuts(head []byte, size int64) []int64 {
	var hlen, at int64
	switch head[6] {
	case 1:
		hlen, at = int64(binary.LittleEndian.Uint16(head[8:])), 10
	case 2, 3:
		hlen, at = int64(binary.LittleEndian.Uint32(head[8:])), 12
	default:
		return nil
	}
	if at+hlen > size {
		return nil
	}
	return []int64{at + hlen}
}

// safetensorsCuts reads the JSON header and puts a boundary at each
// tensor's data_offsets.
func safetensorsCuts(r io.ReaderAt, head []byte, size int64) []int64 {
	n := int64(binary.LittleEndian.Uint64(head))
	if n <= 0 || n > maxSafetensorsHead || 8+n > size {
		return nil
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil
	}
	var tensors map[string]json.RawMessage
	if json.Unmarshal(hdr, &tensors) != nil || len(tensors) > maxBoundaries/2 {
		return nil
	}
	base := 8 + n
	cuts := []int64{base}
	for name, raw := range tensors {
		if name == "__metadata__" {
			continue
		}
		var t struct {
			Offsets []int64 `json:"data_offsets"`
		}
		if json.Unmarshal(raw, &t) != nil || len(t.Offsets) != 2 || t.Offsets[0] < 0 || t.Offsets[1] < t.Offsets[0] || base+t.Offsets[1] > size {
			return nil
		}
		cuts = append(cuts, base+t.Offsets[0], base+t.Offsets[1])
	}
	return cuts
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
