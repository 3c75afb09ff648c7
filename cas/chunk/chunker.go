package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/zeebo/blake3"
)

// Params are a repository's content-defined chunking parameters, fixed at
// init and recorded in its config. Identity never depends on them.
type Params struct {
	Min int `json:"min"`
	Avg int `json:"avg"`
	Max int `json:"max"`
}

// DefaultAvg is the average chunk size of a new repository.
const DefaultAvg = 1 << 20

// NewParams derives min (avg/4) and max (avg*8) from avg, which must be a
// power of two between 4 KiB and 16 MiB.
func NewParams(avg int) (Params, error) {
	if avg < 4<<10 || avg > 16<<20 || avg&(avg-1) != 0 {
		return Params{}, fmt.Errorf("chunk average %d: want a power of two from 4KiB to 16MiB", avg)
	}
	return Params{Min: avg / 4, Avg: avg, Max: avg * 8}, nil
}

// Validate checks parameters read from a config.
func (p Params) Validate() error {
	q, err := NewParams(p.Avg)
	if err != nil {
		return err
	}
	if p != q {
		return errors.New("chunk parameters: min and max must be avg/4 and avg*8")
	}
	return nil
}

// gearTable holds the 256 random 64-bit values of the gear hash: bytes
// 8i..8i+7 (little endian) of the BLAKE3 extended output for the key
// string "cas gear table v1". docs/FORMAT.md documents it.
var gearTable = func() (t [256]uint64) {
	h := blake3.New()
	_, _ = h.Write([]byte("cas gear table v1"))
	buf := make([]byte, 256*8)
	if _, err := h.Digest().Read(buf); err != nil {
		panic(err)
	}
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return t
}()

// Chunker finds content-defined chunk boundaries with a normalized
// FastCDC-style gear hash. It is stateless between chunks: the cut after
// one boundary depends only on the bytes that follow it.
type Chunker struct {
	p            Params
	maskS, maskL uint64 // stricter before Avg, looser after: normalization
	lane         int    // bytes each of scan's two hashes covers at a time; a multiple of 4
}

// New returns a chunker for valid parameters.
func New(p Params) *Chunker {
	b := bits.TrailingZeros(uint(p.Avg))
	// The gear hash shifts left, so its high bits depend on the most bytes:
	// the masks take the top bits.
	return &Chunker{
		p:     p,
		maskS: ^uint64(0) << (64 - (b + 2)),
		maskL: ^uint64(0) << (64 - (b - 2)),
		lane:  laneFor(p.Avg),
	}
}

// laneFor returns the lane length of scan for an average chunk size.
// Past avg a cut comes about avg/4 bytes on, and the second lane's work
// is wasted when the first lane cuts, so a lane is a small part of that;
// each lane also re-hashes window bytes, so it is not much shorter.
// Measured on random data (docs/benchmarks.md): avg/16, from 512 bytes to
// 4 KiB.
func laneFor(avg int) int {
	return min(max(avg/16, 512), 4<<10)
}

// Params returns the chunker's parameters.
func (c *Chunker) Params() Params { return c.p }

// Next returns the length of the chunk that starts at data[0]. data holds
// the rest of the input, or at least Max bytes of it; when atEOF is false
// and len(data) < Max the caller must supply more before calling.
//
// It cuts exactly where docs/FORMAT.md §4's loop cuts: after the first
// byte i at or past Min whose gear hash, of data[Min..i], has no bit of
// maskS set (of maskL from Avg on), else at Max or the end of data.
func (c *Chunker) Next(data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	n = min(n, c.p.Max)
	data = data[:n]
	normal := min(c.p.Avg, n)
	if i := c.scan(data, c.p.Min, normal, c.maskS); i >= 0 {
		return i + 1
	}
	if i := c.scan(data, normal, n, c.maskL); i >= 0 {
		return i + 1
	}
	return n
}

// window is how many bytes the gear hash remembers. Each byte shifts the
// 64-bit state left by one and adds a table value, so the hash after byte
// i is the sum of G[data[j]] << (i-j) over j from Min to i, mod 2^64: the
// terms of bytes 64 or more behind i are shifted out, and it depends on
// data[max(Min, i-63)..i] alone. A hash started from zero at any byte
// from Min on, window bytes before the first byte it checks, checks
// exactly the values the format's loop, started at Min, checks.
const window = 64

// scan returns the first i in [from, to) at which the gear hash of
// data[Min..i] has no bit of mask set, or -1 if there is none.
//
// One hash is a chain of dependent operations, a shift and an add per
// byte, that leaves most of the CPU idle; scan runs two independent
// hashes side by side over adjacent stretches of lane bytes, the second
// started window bytes before its stretch so that it checks exactly the
// values the byte-by-byte loop would.
func (c *Chunker) scan(data []byte, from, to int, mask uint64) int {
	g := &gearTable
	s := from
	h := gearHash(g, data[max(c.p.Min, s-window):s])
	for to-s >= 4*window {
		l := min(c.lane, (to-s)/2) &^ 3
		a, b := data[s:s+l], data[s+l:s+2*l]
		hb := gearHash(g, data[max(c.p.Min, s+l-window):s+l])
		k, ha, hb := scanPair(g, a, b, h, hb, mask)
		if k < l {
			if ha&mask == 0 {
				return s + k
			}
			// b's hash matched at its k-th byte, but a's may still
			// match later in a, which comes first.
			if j := scanOne(g, a[k+1:], ha, mask); j >= 0 {
				return s + k + 1 + j
			}
			return s + l + k
		}
		h = hb
		s += 2 * l
	}
	if j := scanOne(g, data[s:to], h, mask); j >= 0 {
		return s + j
	}
	return -1
}

// gearHash returns the gear hash of data, started from zero.
func gearHash(g *[256]uint64, data []byte) uint64 {
	var h uint64
	for _, x := range data {
		h = h<<1 + g[x]
	}
	return h
}

// scanOne continues the gear hash h over data and returns the first index
// at which it has no bit of mask set, or -1.
func scanOne(g *[256]uint64, data []byte, h, mask uint64) int {
	for i, x := range data {
		h = h<<1 + g[x]
		if h&mask == 0 {
			return i
		}
	}
	return -1
}

// scanPair continues the gear hashes ha over a and hb over b in step, four
// bytes of each at a time, and returns the first index k at which either
// has no bit of mask set, with both hashes at k; or len(a) and the hashes
// at the end. len(a) is a multiple of 4 and b is at least as long. The
// table comes as an argument so that it stays in a register.
func scanPair(g *[256]uint64, a, b []byte, ha, hb, mask uint64) (int, uint64, uint64) {
	b = b[:len(a)]
	for k := 0; k+4 <= len(a); k += 4 {
		x, y := a[k:k+4:k+4], b[k:k+4:k+4]
		ha, hb = ha<<1+g[x[0]], hb<<1+g[y[0]]
		if ha&mask == 0 || hb&mask == 0 {
			return k, ha, hb
		}
		ha, hb = ha<<1+g[x[1]], hb<<1+g[y[1]]
		if ha&mask == 0 || hb&mask == 0 {
			return k + 1, ha, hb
		}
		ha, hb = ha<<1+g[x[2]], hb<<1+g[y[2]]
		if ha&mask == 0 || hb&mask == 0 {
			return k + 2, ha, hb
		}
		ha, hb = ha<<1+g[x[3]], hb<<1+g[y[3]]
		if ha&mask == 0 || hb&mask == 0 {
			return k + 3, ha, hb
		}
	}
	return len(a), ha, hb
}

// Cuts returns the lengths of all chunks of data, a whole input.
func (c *Chunker) Cuts(data []byte) []int {
	var out []int
	for len(data) > 0 {
		n := c.Next(data)
		out = append(out, n)
		data = data[n:]
	}
	return out
}
