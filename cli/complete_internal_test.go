package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command whose usage line takes a REF completes it: a command
// added later without a line in argCompletion fails here, not silently.
func TestEveryRefArgumentCompletes(t *testing.T) {
	root := NewRootCmd(&Factory{IO: &IOStreams{}})
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		takesRef := slices.ContainsFunc(argNames(c.Use), func(w string) bool {
			return slices.ContainsFunc(strings.Split(w, "|"), func(alt string) bool { return strings.HasPrefix(alt, "REF") })
		})
		if takesRef {
			checked++
			if _, ok := argCompletion[c.CommandPath()]; !ok {
				t.Errorf("%q takes a REF (%q) but argCompletion has no line for it", c.CommandPath(), c.Use)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if checked < 10 {
		t.Fatalf("found %d commands taking a REF; the walk is broken", checked)
	}
}
