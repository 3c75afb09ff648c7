package ingest

import "sync/atomic"

// Progress counts work as it is done; a caller polls it to draw a bar.
type Progress struct {
	TotalFiles, TotalBytes atomic.Int64
	Files, Bytes           atomic.Int64
	// Uploading is set when the counts start over for an upload to a
	// remote (after a push that publishes).
	Uploading atomic.Bool
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
