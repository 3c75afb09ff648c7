package buildinfo

import (
	"regexp"
	"testing"
)

func TestVersion(t *testing.T) {
	v := Version()
	if !regexp.MustCompile(`^(v\d+\.\d+\.\d+\S*|devel(-[0-9a-f]{1,12}(\+dirty)?)?)$`).MatchString(v) {
		t.Errorf("Version() = %q, want a module version, devel-<commit>[+dirty] or devel", v)
	}
	if got := Tool(); got != "cas "+v {
		t.Errorf("Tool() = %q, want %q", got, "cas "+v)
	}
}
