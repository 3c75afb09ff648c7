package remote

import (
	"testing"
	"time"

	"github.com/cas-ml/cas/clock"
)

// An endpoint that went silent before answering fails requests at once
// for a while, not for good, and not once it has answered.
func TestHeardSilenceLasts(t *testing.T) {
	h := &heard{quietFor: 30 * time.Second}
	if h.silent() {
		t.Fatal("silent before any silence")
	}
	now := clock.Real().Now()
	h.quietAt.Store(now.UnixNano())
	if !h.silent() {
		t.Fatal("not silent just after a silence")
	}
	h.quietAt.Store(now.Add(-31 * time.Second).UnixNano())
	if h.silent() {
		t.Fatal("still silent after quietFor: the endpoint is never tried again")
	}
	h.quietAt.Store(now.UnixNano())
	h.answered.Store(true)
	if h.silent() {
		t.Fatal("silent though the endpoint has answered")
	}
}
