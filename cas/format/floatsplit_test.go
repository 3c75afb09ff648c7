package format

import (
	"bytes"
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
