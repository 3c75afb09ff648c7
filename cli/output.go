package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/internal/words"
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

// progressNouns say what each verb's progress counts: files pushed or
// restored, objects (packs, index segments, refs) sent or fetched.
var progressNouns = map[string]string{
	"pushing": "files", "restoring": "files", "verifying": "objects",
	"uploading": "objects", "pulling": "objects", "upgrading": "segments",
}

// progressLabel is a bar's description: "restoring 2/5 files", or
// "restoring 2 files" while the total is not known.
func progressLabel(verb string, p *cas.Progress) string {
	if p.Uploading.Load() {
		verb = "uploading" // a push that publishes: its counts started over
	}
	noun := progressNouns[verb]
	if noun == "" {
		noun = "files"
	}
	n, total := p.Files.Load(), p.TotalFiles.Load()
	if total > 0 && total >= n {
		return verb + " " + humanize.Comma(n) + "/" + humanize.Comma(total) + " " + noun
	}
	return verb + " " + humanize.Comma(n) + " " + noun
}

// startProgress draws a bar for p on the error stream while work runs,
// only on a terminal and never with --quiet. The returned func stops it.
// Its sizes are in IEC units (KiB, MiB), as everything else cas prints.
func startProgress(io *IOStreams, quiet bool, verb string, p *cas.Progress) func() {
	if quiet || !io.ErrIsTerminal {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(io.ErrOut),
		progressbar.OptionSetDescription(progressLabel(verb, p)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
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
				bar.Describe(progressLabel(verb, p))
				_ = bar.Set64(p.Bytes.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// count is n and the noun, singular or plural: "1 file", "27 files",
// "1 directory", "2 directories".
func count[N int | int64](n N, noun string) string { return words.Count(n, noun) }

// rateMin is the shortest time a rate is printed for: below it, the
// rate says more about the clock than about the disk or the network (a
// re-push that read nothing is "500 MiB in 3ms").
const rateMin = time.Second

// took is " in 1.2s (410 MiB/s)", or " in 3ms" without a rate when the
// work took less than rateMin.
func took(d time.Duration, bytes int64) string {
	switch {
	case d < time.Millisecond:
		return ""
	case d < rateMin || bytes <= 0:
		return " in " + d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf(" in %s (%s/s)", d.Round(100*time.Millisecond), bytesStr(int64(float64(bytes)/d.Seconds())))
}

// maxColumn is the widest a name column grows to fit its longest name;
// longer names are cut in the middle (fitName).
const maxColumn = 48

// columnWidth is the width of a column holding names: the longest, at
// least min and at most maxColumn.
func columnWidth(names []string, least int) int {
	w := least
	for _, n := range names {
		w = max(w, len([]rune(n)))
	}
	return min(w, maxColumn)
}

// fitName cuts name to width runes, keeping its start and end with "…"
// between (the end of a run's name, its seed, tells runs apart).
func fitName(name string, width int) string {
	r := []rune(name)
	if len(r) <= width || width < 5 {
		return name
	}
	head := (width - 1) / 2
	tail := width - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// padRight pads s with spaces to width runes.
func padRight(s string, width int) string {
	if n := len([]rune(s)); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}
