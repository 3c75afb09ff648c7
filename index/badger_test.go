package index

import (
	"errors"
	"strings"
	"testing"
)

// A panic inside badger becomes an error wrapping ErrCorrupt that keeps
// what badger said.
func TestRecoverDamage(t *testing.T) {
	t.Parallel()
	err := func() (err error) {
		defer recoverDamage(&err)
		panic("table 000001.sst: index out of range")
	}()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "table 000001.sst: index out of range") {
		t.Errorf("got %v, want ErrCorrupt with badger's words", err)
	}
	err = func() (err error) {
		defer recoverDamage(&err)
		return nil
	}()
	if err != nil {
		t.Errorf("without a panic: got %v, want nil", err)
	}
}
