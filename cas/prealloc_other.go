//go:build !linux

package cas

import "os"

// preallocate does nothing where fallocate is not known: the file is
// written as it comes.
func preallocate(*os.File, int64) (bool, error) { return false, nil }

// punchHole does nothing where preallocate does nothing.
func punchHole(*os.File, int64, int64) {}
