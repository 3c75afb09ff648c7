//go:build !amd64 || purego

package format

func join2(elems, g0, g1 []byte)          { join2Go(elems, g0, g1) }
func split2(g0, g1, elems []byte)         { split2Go(g0, g1, elems) }
func join4(elems, g0, g1, g2, g3 []byte)  { join4Go(elems, g0, g1, g2, g3) }
func split4(g0, g1, g2, g3, elems []byte) { split4Go(g0, g1, g2, g3, elems) }
