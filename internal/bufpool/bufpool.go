package bufpool

import (
	"math/bits"
)

// Buffers for file data come from free lists by power-of-two size class.
// Unlike sync.Pool, a free list survives garbage collections, so a push
// streaming gigabytes through a few MiB of buffers allocates them once.
// What the lists hold is bounded: at most freeListBytes per class.
const (
	minBufClass   = 12 // 4 KiB
	maxBufClass   = 24 // 16 MiB
	freeListBytes = 24 << 20
)

var freeLists = func() (l [maxBufClass + 1]chan []byte) {
	for c := minBufClass; c <= maxBufClass; c++ {
		l[c] = make(chan []byte, max(1, min(64, freeListBytes>>c)))
	}
	return l
}()

func bufClass(n int) int {
	if n <= 1<<minBufClass {
		return minBufClass
	}
	return bits.Len(uint(n - 1))
}

// Get returns a buffer of length n (contents undefined).
func Get(n int) []byte {
	c := bufClass(n)
	if c > maxBufClass {
		return make([]byte, n)
	}
	select {
	case b := <-freeLists[c]:
		return b[:n]
	default:
		return make([]byte, n, 1<<c)
	}
}

// Put returns a buffer from Get to its free list, or drops it when
// the list is full.
func Put(b []byte) {
	c := bits.Len(uint(cap(b))) - 1
	if c < minBufClass || c > maxBufClass || cap(b) != 1<<c {
		return
	}
	select {
	case freeLists[c] <- b[:cap(b)]:
	default:
	}
}

// Drain empties the free lists, so that what they held can be collected:
// for measurements of a process's memory (tests) that must not count
// buffers an earlier piece of work left.
func Drain() {
	for _, l := range freeLists {
		for {
			select {
			case <-l:
				continue
			default:
			}
			break
		}
	}
}
