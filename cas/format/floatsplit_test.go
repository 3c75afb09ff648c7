package format

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// The split and join routines (SSE2 on amd64) agree with the plain
// per-byte definition for every length, aligned or not, and touch
// nothing past the elements they are given.
func TestSplitJoin(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 1000, 4099} {
		for _, es := range []int{2, 4} {
			for _, skew := range []int{0, 1, 3} {
				buf := make([]byte, skew+es*n+8)
				for i := range buf {
					buf[i] = byte(r.Uint32())
				}
				elems := buf[skew : skew+es*n]
				want := make([][]byte, es)
				for g := range want {
					want[g] = make([]byte, n)
					for i := range n {
						want[g][i] = elems[i*es+g]
					}
				}
				// Groups in one buffer with a guard byte after each.
				gbuf := make([]byte, es*(n+1)+skew)
				gs := make([][]byte, es)
				for g := range gs {
					gs[g] = gbuf[skew+g*(n+1):][:n]
					gbuf[skew+g*(n+1)+n] = 0xa5
				}
				if es == 2 {
					split2(gs[0], gs[1], elems)
				} else {
					split4(gs[0], gs[1], gs[2], gs[3], elems)
				}
				for g := range gs {
					if !bytes.Equal(gs[g], want[g]) || gbuf[skew+g*(n+1)+n] != 0xa5 {
						t.Fatalf("split es=%d n=%d skew=%d: group %d wrong or guard overwritten", es, n, skew, g)
					}
				}
				out := bytes.Repeat([]byte{0x5a}, len(buf))
				if es == 2 {
					join2(out[skew:skew+es*n], gs[0], gs[1])
				} else {
					join4(out[skew:skew+es*n], gs[0], gs[1], gs[2], gs[3])
				}
				if !bytes.Equal(out[skew:skew+es*n], elems) || out[skew+es*n] != 0x5a || (skew > 0 && out[skew-1] != 0x5a) {
					t.Fatalf("join es=%d n=%d skew=%d: wrong bytes or out of bounds", es, n, skew)
				}
			}
		}
	}
}

// groupEntropy, which the encoder reads from the elements to split a
// mantissa group straight into the stored form, gives the very value
// sampleEntropy gives of the split group, on which appendBlock decides
// the same for the other groups: both keep a block raw alike.
func TestGroupEntropy(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{2*sampleLen + 1, 3 * sampleLen, 1 << 16, 1<<16 - 3} {
		for _, es := range []int{1, 2, 4, 8} {
			elems := make([]byte, n*es)
			for i := range elems {
				// Byte g of an element drawn from 2^(g+1) values: every
				// entropy from 1 to 8 bits.
				elems[i] = byte(r.Uint32()) >> (7 - i%es%8)
			}
			for g := range es {
				group := make([]byte, n)
				for i := range group {
					group[i] = elems[i*es+g]
				}
				if got, want := groupEntropy(elems, es, g), sampleEntropy(group); got != want {
					t.Errorf("n=%d es=%d group %d: groupEntropy %v, sampleEntropy %v", n, es, g, got, want)
				}
			}
		}
	}
}

// repeats finds a pattern that recurs every 1000 bytes and every 1500
// (matching within the first half of its sample), not one every 2000
// bytes (which it gives up on at the middle), and none in the exponent
// bytes of weights or in random bytes.
func TestRepeats(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	exponents := make([]byte, 1<<16)
	for i := range exponents {
		exponents[i] = byte(math.Float32bits(float32(r.NormFloat64()*0.02)) >> 24)
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"period 1000", bytes.Repeat(random(1000), 66)[:1<<16], true},
		{"period 1500", bytes.Repeat(random(1500), 44)[:1<<16], true},
		// Too few matches in the first half of the sample: given up.
		{"period 2000", bytes.Repeat(random(2000), 33)[:1<<16], false},
		{"zeros", make([]byte, 1<<16), true},
		{"random", random(1 << 16), false},
		{"exponent bytes of weights", exponents, false},
	}
	for _, tt := range tests {
		if got := repeats(tt.b); got != tt.want {
			t.Errorf("repeats(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
