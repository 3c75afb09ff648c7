package format

import (
	"strings"

	"github.com/cas-ml/cas/digest"
)

// Backend keys of the objects this package encodes (docs/FORMAT.md).
const (
	// PackPrefix is where packs live: PackKey fans them out by the first
	// two hex digits of their name.
	PackPrefix = "packs/"
	// SegmentPrefix is where index segments live, one key per segment.
	SegmentPrefix = "index/"
)

// PackKey is the backend key of pack id: packs/<2 hex>/<64 hex>.
func PackKey(id digest.Digest) string {
	h := id.Hex()
	return PackPrefix + h[:2] + "/" + h
}

// PackIDFromKey returns the pack name a key under PackPrefix ends with.
func PackIDFromKey(key string) (digest.Digest, error) {
	i := strings.LastIndexByte(key, '/')
	return digest.ParseHex(key[i+1:])
}

// SegmentKey is the backend key of index segment id: index/<64 hex>.
func SegmentKey(id digest.Digest) string { return SegmentPrefix + id.Hex() }

// SegmentIDFromKey returns the segment name of a key under SegmentPrefix.
func SegmentIDFromKey(key string) (digest.Digest, error) {
	return digest.ParseHex(strings.TrimPrefix(key, SegmentPrefix))
}
