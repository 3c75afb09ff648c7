package cli

import (
	"encoding/json"
	"io"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/clock"
)

// writeJSON prints v as indented JSON with a trailing newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func bytesStr(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}

// startProgress draws a bar for p on the error stream while work runs,
// only on a terminal and never with --quiet. The returned func stops it.
func startProgress(io *IOStreams, quiet bool, verb string, p *cas.Progress) func() {
	if quiet || !io.ErrIsTerminal {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(io.ErrOut),
		progressbar.OptionSetDescription(verb),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// The bar is redrawn on the wall clock, whatever the command's.
		for {
			select {
			case <-done:
				_ = bar.Finish()
				return
			case <-clock.Real().After(100 * time.Millisecond):
				if total := p.TotalBytes.Load(); total > 0 && bar.GetMax64() != total {
					bar.ChangeMax64(total)
				}
				v := verb
				if p.Uploading.Load() {
					v = "uploading"
				}
				bar.Describe(v + " " + humanize.Comma(p.Files.Load()) + "/" + humanize.Comma(p.TotalFiles.Load()) + " files")
				_ = bar.Set64(p.Bytes.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
