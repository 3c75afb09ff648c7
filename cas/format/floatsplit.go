package format

import "encoding/binary"

// Splitting elements into byte groups and joining them back, the float
// codec's inner loops: on amd64 with SSE2 (floatsplit_amd64.s, 16
// elements a step), elsewhere and for the last elements with the
// portable loops below, which move 8 bytes at a time.

// zip4 interleaves the low and high 4 bytes of x: bytes a0..a3 b0..b3
// (low first) become a0 b0 a1 b1 a2 b2 a3 b3. unzip4 is its inverse.
func zip4(x uint64) uint64 {
	t := (x ^ x>>16) & 0x00000000ffff0000
	x ^= t ^ t<<16
	t = (x ^ x>>8) & 0x0000ff000000ff00
	return x ^ t ^ t<<8
}

func unzip4(x uint64) uint64 {
	t := (x ^ x>>8) & 0x0000ff000000ff00
	x ^= t ^ t<<8
	t = (x ^ x>>16) & 0x00000000ffff0000
	return x ^ t ^ t<<16
}

// join2Go puts bytes 0 and 1 of len(g0) 2-byte elements back into elems.
func join2Go(elems, g0, g1 []byte) {
	n := len(g0)
	g1, elems = g1[:n], elems[:2*n]
	for len(g0) >= 8 && len(g1) >= 8 && len(elems) >= 16 {
		lo := binary.LittleEndian.Uint64(g0)
		hi := binary.LittleEndian.Uint64(g1)
		binary.LittleEndian.PutUint64(elems, zip4(lo&0xffffffff|hi<<32))
		binary.LittleEndian.PutUint64(elems[8:], zip4(lo>>32|hi&^0xffffffff))
		g0, g1, elems = g0[8:], g1[8:], elems[16:]
	}
	for i := range g0 {
		elems[2*i], elems[2*i+1] = g0[i], g1[i]
	}
}

// split2Go is the inverse of join2Go.
func split2Go(g0, g1, elems []byte) {
	n := len(g0)
	g1, elems = g1[:n], elems[:2*n]
	for len(g0) >= 8 && len(g1) >= 8 && len(elems) >= 16 {
		x := unzip4(binary.LittleEndian.Uint64(elems))
		y := unzip4(binary.LittleEndian.Uint64(elems[8:]))
		binary.LittleEndian.PutUint64(g0, x&0xffffffff|y<<32)
		binary.LittleEndian.PutUint64(g1, x>>32|y&^0xffffffff)
		g0, g1, elems = g0[8:], g1[8:], elems[16:]
	}
	for i := range g0 {
		g0[i], g1[i] = elems[2*i], elems[2*i+1]
	}
}

// join4Go puts the four byte groups of len(g0) 4-byte elements back
// into elems.
func join4Go(elems, g0, g1, g2, g3 []byte) {
	n := len(g0)
	g1, g2, g3, elems = g1[:n], g2[:n], g3[:n], elems[:4*n]
	for i := range g0 {
		binary.LittleEndian.PutUint32(elems[4*i:], uint32(g0[i])|uint32(g1[i])<<8|uint32(g2[i])<<16|uint32(g3[i])<<24)
	}
}

// split4Go is the inverse of join4Go.
func split4Go(g0, g1, g2, g3, elems []byte) {
	n := len(g0)
	g1, g2, g3, elems = g1[:n], g2[:n], g3[:n], elems[:4*n]
	for i := range g0 {
		v := binary.LittleEndian.Uint32(elems[4*i:])
		g0[i], g1[i], g2[i], g3[i] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
}
