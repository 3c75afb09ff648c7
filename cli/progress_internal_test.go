package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
)

// A bar's label counts what the verb moves, with a total only once one
// is known: never "restoring 2/0 files".
func TestProgressLabel(t *testing.T) {
	tests := []struct {
		verb      string
		n, total  int64
		uploading bool
		want      string
	}{
		{"restoring", 2, 0, false, "restoring 2 files"},
		{"pushing", 3, 27, false, "pushing 3/27 files"},
		{"pushing", 1500, 2000, false, "pushing 1,500/2,000 files"},
		{"pushing", 2, 5, true, "uploading 2/5 objects"},
		{"pulling", 4, 9, false, "pulling 4/9 objects"},
		{"upgrading", 1, 3, false, "upgrading 1/3 segments"},
		{"verifying", 7, 3, false, "verifying 7 objects"}, // a total passed is no total
	}
	for _, tt := range tests {
		p := &cas.Progress{}
		p.Files.Store(tt.n)
		p.TotalFiles.Store(tt.total)
		p.Uploading.Store(tt.uploading)
		if got := progressLabel(tt.verb, p); got != tt.want {
			t.Errorf("progressLabel(%q, %d/%d): got %q, want %q", tt.verb, tt.n, tt.total, got, tt.want)
		}
	}
}

// The bar's sizes are in IEC units, as every other size cas prints.
func TestProgressIEC(t *testing.T) {
	if raceEnabled {
		// progressbar v3.19.1's own spinner goroutine reads the bar's
		// state unlocked while ChangeMax64 renders it (a race inside the
		// library, seen in CI's race run); the bar only draws.
		t.Skip("progressbar races with itself on a terminal bar under -race")
	}
	var buf bytes.Buffer
	ios := &IOStreams{ErrOut: &buf, ErrIsTerminal: true}
	p := &cas.Progress{}
	p.TotalBytes.Store(300 << 20)
	p.Bytes.Store(3 << 20)
	p.Files.Store(2)
	stop := startProgress(ios, false, "restoring", p)
	time.Sleep(350 * time.Millisecond) // the bar redraws every 100 ms of wall time
	stop()
	out := buf.String()
	if !strings.Contains(out, "MiB") || strings.Contains(out, " MB") {
		t.Errorf("bar %q: want sizes in MiB, none in MB", out)
	}
	if !strings.Contains(out, "restoring 2 files") {
		t.Errorf("bar %q: want it to say \"restoring 2 files\"", out)
	}
}

// A rate is printed only for work that took long enough to measure one.
func TestTook(t *testing.T) {
	tests := []struct {
		d     time.Duration
		bytes int64
		want  string
	}{
		{3 * time.Millisecond, 500 << 20, " in 3ms"},
		{0, 500 << 20, ""},
		{999 * time.Millisecond, 1 << 20, " in 999ms"},
		{2 * time.Second, 500 << 20, " in 2s (250 MiB/s)"},
		{2 * time.Second, 0, " in 2s"},
	}
	for _, tt := range tests {
		if got := took(tt.d, tt.bytes); got != tt.want {
			t.Errorf("took(%v, %d): got %q, want %q", tt.d, tt.bytes, got, tt.want)
		}
	}
}

func TestFitName(t *testing.T) {
	long := "runs/sweep-learning-rate-0.001-batch-64-warmup-s3"
	if got := fitName(long, 24); got != "runs/sweep-…64-warmup-s3" || len([]rune(got)) != 24 {
		t.Errorf("fitName: got %q (%d runes), want 24 runes keeping both ends", got, len([]rune(got)))
	}
	if got := fitName("train", 24); got != "train" {
		t.Errorf("fitName(train): got %q", got)
	}
	if got := columnWidth([]string{"a", long}, 24); got != maxColumn {
		t.Errorf("columnWidth: got %d, want %d", got, maxColumn)
	}
	if got := columnWidth([]string{"a", "runs/a-thirty-char-name-xxxxxxx"}, 24); got != 31 {
		t.Errorf("columnWidth: got %d, want 31", got)
	}
}
