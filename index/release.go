package index

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/clock"
)

// Badger maps its tables, value log and memtable files into memory and
// reads and writes them there, and a page of a mapped file counts in the
// process's resident set for as long as it stays mapped: for badger, as
// long as the file lives. A push that compacts a 100 MiB index, or looks
// keys up all over it (the kernel maps up to 64 KiB around each page
// touched), kept all of it resident, so the resident set grew with the
// index. So the index hands the pages of its files back to the kernel
// (MADV_PAGEOUT) whenever the process has more than releaseAbove of file
// pages resident: clean pages leave memory, to be read again from disk
// if they are needed; dirty ones stay until badger's own writes sync
// them. The advice is harmless on any memory (on anonymous memory it can
// only move pages to swap), so a range badger unmaps meanwhile, and
// something else maps, comes to no harm.
const (
	releaseEvery = 250 * time.Millisecond
	// releaseAbove counts the program's own text (some 15 MiB) too.
	releaseAbove = 48 << 20
)

// pageReleaser hands back the pages of files mapped from dir.
type pageReleaser struct {
	dir  string // as /proc/self/maps names it: absolute, links resolved
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// startReleaser starts releasing the pages of files under dir every
// releaseEvery while more than releaseAbove of file pages are resident.
// It returns nil where there is no /proc/self to tell.
func startReleaser(dir string) *pageReleaser {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if _, serr := os.Stat("/proc/self/maps"); err != nil || serr != nil {
		return nil
	}
	r := &pageReleaser{dir: abs + "/", stop: make(chan struct{})}
	r.done.Go(func() {
		for {
			select {
			case <-r.stop:
				return
			case <-clock.Real().After(releaseEvery):
			}
			if residentFileBytes() > releaseAbove {
				r.release()
			}
		}
	})
	return r
}

// close stops the releaser; closing it again does nothing.
func (r *pageReleaser) close() {
	if r != nil {
		r.once.Do(func() { close(r.stop) })
		r.done.Wait()
	}
}

// release advises the kernel to page out every shared mapping of a file
// under r.dir, and returns how many it advised.
func (r *pageReleaser) release() int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || len(f[1]) < 4 || f[1][3] != 's' || !strings.HasPrefix(f[5], r.dir) {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
		if errno == 0 {
			n++
		}
	}
	return n
}

// residentFileBytes is how much of mapped files the process has resident
// (RssFile in /proc/self/status), 0 if that cannot be read.
func residentFileBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
