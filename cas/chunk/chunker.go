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
	}
}

// Params returns the chunker's parameters.
func (c *Chunker) Params() Params { return c.p }

// Next returns the length of the chunk that starts at data[0]. data holds
// the rest of the input, or at least Max bytes of it; when atEOF is false
// and len(data) < Max the caller must supply more before calling.
func (c *Chunker) Next(data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	normal := min(c.p.Avg, n)
	var h uint64
	i := c.p.Min
	g := &gearTable
	for ; i < normal; i++ {
		h = h<<1 + g[data[i]]
		if h&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + g[data[i]]
		if h&c.maskL == 0 {
			return i + 1
		}
	}
	return n
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
