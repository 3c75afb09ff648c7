package format

import "math"

// EncodeFloatAlways is EncodeFloat without its demand to save: the stored
// form whatever its length, for tests of inputs that do not compress.
func EncodeFloatAlways(raw []byte, dt DType) []byte {
	out, _ := encodeFloat(raw, dt, grouping(dt), math.MaxInt)
	return out
}

// EncodeFloatGrouped is EncodeFloatAlways with groups of the given byte
// widths, low byte first, in place of dt's own.
func EncodeFloatGrouped(raw []byte, dt DType, widths []uint8) []byte {
	out, _ := encodeFloat(raw, dt, widths, math.MaxInt)
	return out
}
