package ingest

import "sync/atomic"

// Progress counts work as it is done; a caller polls it to draw a bar. A
// push counts files and their bytes (not links).
type Progress struct {
	TotalFiles, TotalBytes atomic.Int64
	Files, Bytes           atomic.Int64
	// Uploading is set when the counts start over for an upload to a
	// remote (after a push that publishes).
	Uploading atomic.Bool
	// CountAhead, set before a push starts, has the totals counted by a
	// walk of their own ahead of the push (an lstat more a file), so that
	// a bar shows how far along it is from the start. Without it the
	// totals grow as the push finds the files, a little ahead of them.
	CountAhead bool
}

// Restart sets every count back to zero.
func (p *Progress) Restart() {
	if p != nil {
		p.Files.Store(0)
		p.Bytes.Store(0)
		p.TotalFiles.Store(0)
		p.TotalBytes.Store(0)
	}
}
