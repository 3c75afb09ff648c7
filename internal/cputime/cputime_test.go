package cputime

import (
	"runtime"
	"testing"
	"time"
)

// A thread that spins for 50 ms of wall time has used some CPU time, and
// no more than the wall time it had (plus the clock's tick).
func TestThreadCountsSpinning(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, ok := Thread(); ok {
			t.Fatal("Thread measured on a system it does not measure")
		}
		t.Skip("measured on Linux only")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := Thread()
	if !ok {
		t.Fatal("Thread: not measured on Linux")
	}
	wall := time.Now()
	for time.Since(wall) < 50*time.Millisecond {
	}
	spent := time.Since(wall)
	end, ok := Thread()
	if !ok {
		t.Fatal("Thread: not measured on Linux")
	}
	if used := end - start; used <= 0 || used > spent+10*time.Millisecond {
		t.Errorf("a thread spinning for %v used %v of CPU time", spent, used)
	}
}
