package index

// ReleasePages hands the pages of the index's mapped files back to the
// kernel now, if more of mapped files than the releaser allows is
// resident, instead of at the releaser's next tick. A reader that looks
// up keys all over the index at a high rate (a restore: a lookup or two
// a file, each faulting in up to 64 KiB of a table) calls it every few
// hundred lookups, so that the resident set stays near the releaser's
// bound between its ticks. Safe to call from several goroutines; it does
// nothing where the process cannot tell its pages.
func (x *Badger) ReleasePages() {
	if x.releaser != nil && residentFileBytes() > releaseAbove {
		x.releaser.release()
	}
}
