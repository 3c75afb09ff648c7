package remote_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
)

// Mem stamps each version with the time on its clock when it was put, so
// a test ages objects by moving the clock.
func TestMemStampsWithItsClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := clock.NewFake(start)
	m := remote.NewMemClock(c)
	put := func(key, data string) {
		t.Helper()
		if err := m.Put(t.Context(), key, strings.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	modTime := func(key string) time.Time {
		t.Helper()
		info, err := m.Stat(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime
	}
	put("a", "one")
	c.Advance(25 * time.Hour)
	put("b", "two")
	if got := modTime("a"); !got.Equal(start) {
		t.Errorf("ModTime of a = %v, want %v", got, start)
	}
	if got, want := modTime("b"), start.Add(25*time.Hour); !got.Equal(want) {
		t.Errorf("ModTime of b = %v, want %v", got, want)
	}
	c.Advance(time.Hour)
	put("a", "again")
	if got, want := modTime("a"), start.Add(26*time.Hour); !got.Equal(want) {
		t.Errorf("ModTime of a rewritten = %v, want %v", got, want)
	}
}
