package format

import "math"

// EncodeFloatAlways is EncodeFloat without its demand to save: the stored
// form whatever its length, for tests of inputs that do not compress.
func EncodeFloatAlways(raw []byte, dt DType) []byte {
	out, _ := encodeFloat(nil, raw, dt, grouping(dt), stripeLog, math.MaxInt)
	return out
}

// EncodeFloatLayout is EncodeFloatAlways with groups of the given byte
// widths (low byte first) and stripes of 2^slog elements in place of the
// encoder's own: stored forms a decoder must read though the encoder
// does not write them.
func EncodeFloatLayout(raw []byte, dt DType, widths []uint8, slog int) []byte {
	out, _ := encodeFloat(nil, raw, dt, widths, slog, math.MaxInt)
	return out
}
