// Package cputime gives the CPU time of the calling thread, which the
// benchmarks report beside wall time: a machine shared with other work
// stretches it less. It must not import anything of this module.
package cputime

import "time"

// Thread returns the CPU time (user + system) the calling OS thread has
// used, and false where it is not measured (every system but Linux). A
// caller pins its goroutine to the thread (runtime.LockOSThread) around
// what it measures.
func Thread() (time.Duration, bool) { return thread() }
