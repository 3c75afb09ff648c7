package ckpt

import (
	"bytes"
	"errors"
	"testing"
)

// What Inspect returns names the package once, in front, and its Err
// says the same without it; errors.Is still finds the sentinel.
func TestInspectErrorNamesPackageOnce(t *testing.T) {
	b := []byte("plain text, no checkpoint")
	_, err := Inspect(bytes.NewReader(b), int64(len(b)), "notes.txt")
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrFormat) {
		t.Fatalf("Inspect of text: got %v, want an *Error wrapping ErrFormat", err)
	}
	if got, want := err.Error(), "ckpt: "+ce.Err.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if bytes.Count([]byte(err.Error()), []byte("ckpt: ")) != 1 {
		t.Errorf("got %q, want the package named once", err)
	}
}
