//go:build amd64 && !purego

package format

// The SSE2 routines of floatsplit_amd64.s: n elements, a multiple of 16.

//go:noescape
func join2x(elems, g0, g1 *byte, n int)

//go:noescape
func split2x(g0, g1, elems *byte, n int)

//go:noescape
func join4x(elems, g0, g1, g2, g3 *byte, n int)

//go:noescape
func split4x(g0, g1, g2, g3, elems *byte, n int)

// join2 interleaves g0 and g1 (bytes 0 and 1 of len(g0) elements) into
// elems.
func join2(elems, g0, g1 []byte) {
	n := len(g0) &^ 15
	if n > 0 {
		_, _, _ = elems[2*n-1], g0[n-1], g1[n-1]
		join2x(&elems[0], &g0[0], &g1[0], n)
	}
	join2Go(elems[2*n:], g0[n:], g1[n:])
}

// split2 is the inverse of join2.
func split2(g0, g1, elems []byte) {
	n := len(g0) &^ 15
	if n > 0 {
		_, _, _ = elems[2*n-1], g0[n-1], g1[n-1]
		split2x(&g0[0], &g1[0], &elems[0], n)
	}
	split2Go(g0[n:], g1[n:], elems[2*n:])
}

// join4 interleaves the four groups of len(g0) 4-byte elements.
func join4(elems, g0, g1, g2, g3 []byte) {
	n := len(g0) &^ 15
	if n > 0 {
		_, _, _, _, _ = elems[4*n-1], g0[n-1], g1[n-1], g2[n-1], g3[n-1]
		join4x(&elems[0], &g0[0], &g1[0], &g2[0], &g3[0], n)
	}
	join4Go(elems[4*n:], g0[n:], g1[n:], g2[n:], g3[n:])
}

// split4 is the inverse of join4.
func split4(g0, g1, g2, g3, elems []byte) {
	n := len(g0) &^ 15
	if n > 0 {
		_, _, _, _, _ = elems[4*n-1], g0[n-1], g1[n-1], g2[n-1], g3[n-1]
		split4x(&g0[0], &g1[0], &g2[0], &g3[0], &elems[0], n)
	}
	split4Go(g0[n:], g1[n:], g2[n:], g3[n:], elems[4*n:])
}
