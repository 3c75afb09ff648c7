package attest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// What attest returns names the package once, in front, and its Err says
// the same without it; errors.Is still finds the sentinel.
func TestErrorNamesPackageOnce(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPublicKey(bad)
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(err, ErrKeyFile) {
		t.Fatalf("LoadPublicKey of a text file: got %v, want an *Error wrapping ErrKeyFile", err)
	}
	want := bad + ": not an ed25519 key file: no PEM block"
	if got := ae.Err.Error(); got != want {
		t.Errorf("got Err %q, want %q", got, want)
	}
	if got := err.Error(); got != "attest: "+want {
		t.Errorf("got %q, want %q", got, "attest: "+want)
	}
}
