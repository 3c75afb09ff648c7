package ingest

import (
	"math/rand/v2"
	"testing"

	"github.com/cas-ml/cas/cas/chunk"
)

// TestChunkerCutOfPrefixRev2 checks what largeRead.cut relies on when it
// trusts a cut found in the tail of a read buffer, shorter than Max and
// not at EOF: a cut Next finds in a prefix of the data (before its end)
// is the one it finds in the whole, for prefixes of every length around
// Min, Avg and Max, for the smallest and the default parameters.
func TestChunkerCutOfPrefixRev2(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, avg := range []int{4 << 10, 64 << 10, 1 << 20} {
		params, _ := chunk.NewParams(avg)
		c := chunk.New(params)
		for trial := range 40 {
			data := genData([]string{"random", "mixed"}[trial%2], params.Max+4096, params.Max, rng)
			whole := c.Next(data)
			lens := []int{params.Min, params.Min + 1, params.Avg - 1, params.Avg, params.Avg + 1, params.Max - 1,
				whole - 1, whole, whole + 1}
			for range 60 {
				lens = append(lens, 1+rng.IntN(params.Max))
			}
			for _, n := range lens {
				if n <= 0 || n > len(data) {
					continue
				}
				if got := c.Next(data[:n]); got < n && got != whole {
					t.Fatalf("avg %d: Next of the first %d bytes cuts at %d, of all %d bytes at %d", avg, n, got, len(data), whole)
				}
			}
		}
	}
}
