package format_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/cas-ml/cas/cas/format"
)

// Float data for the codec's tests, drawn in Go: weights as trained
// transformers hold them (normal, std 0.02), LayerNorm gains near 1, an
// Adam second moment (squares of small normals), each in the dtypes a
// checkpoint keeps them in.

// toBF16 rounds f to the nearest bfloat16, ties to even (NaN stays NaN,
// quiet).
func toBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// toFP16 rounds f to the nearest IEEE binary16, ties to even: overflow
// to infinity, underflow through the subnormals to zero, NaN stays NaN
// (quiet, with the high bits of its payload).
func toFP16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e >= 1 {
		// A carry out of the mantissa moves into the exponent, and from
		// the largest finite value into infinity, as it should.
		h := uint32(e)<<10 | mant>>13
		rem := mant & 0x1fff
		if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	// Subnormal in binary16: the value is m * 2^(exp-150) with the
	// implicit bit, in units of 2^-24.
	if exp == 0 {
		return sign // float32 subnormals are far below 2^-25
	}
	m := mant | 0x800000
	shift := uint(14 - e)
	if shift > 24 {
		return sign
	}
	h := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || rem == half && h&1 == 1 {
		h++
	}
	return sign | uint16(h)
}

// fromFP16 is the exact value of binary16 h.
func fromFP16(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * float32(math.Ldexp(m, -24))
	case 0x1f:
		if m == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32(math.Ldexp(1024+m, e-25))
}

// encodeAs returns the little-endian bytes of vs as dtype dt.
func encodeAs(vs []float64, dt format.DType) []byte {
	out := make([]byte, 0, len(vs)*dt.Size())
	for _, v := range vs {
		switch dt {
		case format.FP32:
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v)))
		case format.FP64:
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		case format.BF16:
			out = binary.LittleEndian.AppendUint16(out, toBF16(float32(v)))
		case format.FP16:
			out = binary.LittleEndian.AppendUint16(out, toFP16(float32(v)))
		default:
			panic("encodeAs: no conversion to " + dt.String())
		}
	}
	return out
}

// normals returns n draws of N(mean, std²) from a generator seeded with seed.
func normals(seed uint64, n int, mean, std float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 15))
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = mean + std*r.NormFloat64()
	}
	return vs
}

// weights are n elements drawn like trained transformer weights.
func weights(seed uint64, n int, dt format.DType) []byte {
	return encodeAs(normals(seed, n, 0, 0.02), dt)
}

// adamSecondMoment is an Adam exp_avg_sq: squares of gradients drawn
// N(0, 0.001²), as FP32.
func adamSecondMoment(seed uint64, n int) []byte {
	vs := normals(seed, n, 0, 0.001)
	for i, v := range vs {
		vs[i] = v * v
	}
	return encodeAs(vs, format.FP32)
}

// specials are bit patterns every float codec must keep exactly: NaNs
// with payloads (quiet and signalling, both signs), infinities, zeros of
// both signs, the smallest and largest subnormals, the largest finite.
var specials = map[format.DType][]uint64{
	format.FP32: {0x7fc00000, 0x7fc00001, 0xffc12345, 0x7f800001, 0xff800abc, 0x7fbfffff, 0x7f800000, 0xff800000,
		0, 0x80000000, 1, 0x80000001, 0x007fffff, 0x807fffff, 0x7f7fffff, 0xff7fffff},
	format.BF16: {0x7fc0, 0x7fc1, 0xffd5, 0x7f81, 0xff81, 0x7f80, 0xff80, 0, 0x8000, 1, 0x8001, 0x007f, 0x807f, 0x7f7f},
	format.FP16: {0x7e00, 0x7e01, 0xfe55, 0x7c01, 0xfc01, 0x7dff, 0x7c00, 0xfc00, 0, 0x8000, 1, 0x8001, 0x03ff, 0x83ff, 0x7bff},
	format.FP64: {0x7ff8000000000000, 0x7ff8000000000001, 0xfff0000000000001, 0x7ff0000000000000, 0xfff0000000000000,
		0, 0x8000000000000000, 1, 0x800fffffffffffff, 0x7fefffffffffffff},
	format.FP8E4M3: {0x7f, 0xff, 0, 0x80, 1, 0x81, 0x07, 0x7e},
	format.FP8E5M2: {0x7c, 0xfc, 0x7d, 0x7f, 0xfe, 0, 0x80, 1, 0x83, 0x7b},
}

// mixed returns n elements of dt: weights, with one in four replaced by
// a special value and one in sixteen by random bits.
func mixed(seed uint64, n int, dt format.DType) []byte {
	es := dt.Size()
	r := rand.New(rand.NewPCG(seed, 16))
	vs := normals(seed, n, 0, 0.02)
	out := make([]byte, n*es)
	sp := specials[dt]
	for i := range n {
		var bits uint64
		switch k := r.IntN(16); {
		case k < 4:
			bits = sp[r.IntN(len(sp))]
		case k == 4:
			bits = r.Uint64()
		default:
			switch dt {
			case format.FP8E4M3, format.FP8E5M2:
				bits = uint64(r.IntN(256))
			default:
				var b [8]byte
				copy(b[:], encodeAs(vs[i:i+1], dt))
				bits = binary.LittleEndian.Uint64(b[:])
			}
		}
		for j := range es {
			out[i*es+j] = byte(bits >> (8 * j))
		}
	}
	return out
}
