package cas

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate allocates a file's blocks for its size before it is
// written: the file system lays them out at once and reserves nothing
// write by write, and a disk too small fails here, not after the bytes
// that fit. It reports whether it did; a file system that cannot do it
// is no error.
func preallocate(f *os.File, size int64) (bool, error) {
	var ferr error
	err := control(f, func(fd int) {
		// tmpfs gives up on any signal, and the Go runtime sends some.
		for {
			if ferr = unix.Fallocate(fd, 0, 0, size); ferr != unix.EINTR {
				return
			}
		}
	})
	if err == nil {
		err = ferr
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT), errors.Is(err, unix.EFBIG):
		return false, &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	default: // EOPNOTSUPP and its kin: written as it comes
		return false, nil
	}
}

// punchHole gives back the whole pages of f between off and off+n, a
// range of zeros a preallocated file need not keep on disk. It reads as
// zeros either way, so a failure only costs room.
func punchHole(f *os.File, off, n int64) {
	const page = 4 << 10
	from, to := (off+page-1)&^(page-1), (off+n)&^(page-1)
	if to <= from {
		return
	}
	_ = control(f, func(fd int) {
		_ = unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, from, to-from)
	})
}

// control runs fn with f's descriptor, without the blocking mode Fd sets.
func control(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
