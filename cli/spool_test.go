package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
)

// A jsonList writes, element by element, the bytes writeJSON writes for
// the whole slice: at the top, and as the last field of an object.
func TestJSONListMatchesWriteJSON(t *testing.T) {
	t.Parallel()
	all := []cas.Change{
		{Path: "a <b>&\"c\"", Op: "added", Kind: cas.KindFile, NewSize: 3},
		{Path: "d/", Op: "removed", Kind: cas.KindDir},
		{Path: "é\x01", Op: "modified", Kind: cas.KindExec, OldSize: 1, NewSize: 2},
	}
	for n := 0; n <= len(all); n++ {
		changes := all[:n:n]
		t.Run(fmt.Sprintf("%d elements", n), func(t *testing.T) {
			var want, got bytes.Buffer
			if err := writeJSON(&want, changes); err != nil {
				t.Fatal(err)
			}
			l := &jsonList{w: &got}
			for _, c := range changes {
				if err := l.add(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.close(); err != nil {
				t.Fatal(err)
			}
			got.WriteString("\n")
			if got.String() != want.String() {
				t.Errorf("top level: got\n%s\nwant\n%s", got.String(), want.String())
			}

			type wrap struct {
				Name    string       `json:"name"`
				Changes []cas.Change `json:"changes"`
			}
			want.Reset()
			if err := writeJSON(&want, wrap{"x", changes}); err != nil {
				t.Fatal(err)
			}
			var head bytes.Buffer
			if err := writeJSON(&head, wrap{"x", []cas.Change{}}); err != nil {
				t.Fatal(err)
			}
			got.Reset()
			got.Write(bytes.TrimSuffix(head.Bytes(), []byte("[]\n}\n")))
			l = &jsonList{w: &got, indent: "  "}
			for _, c := range changes {
				if err := l.add(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.close(); err != nil {
				t.Fatal(err)
			}
			got.WriteString("\n}\n")
			if got.String() != want.String() {
				t.Errorf("in an object: got\n%s\nwant\n%s", got.String(), want.String())
			}
		})
	}
}

// A spool gives back exactly what was written since its last reset,
// whether it stayed in memory or went to a file.
func TestSpool(t *testing.T) {
	t.Parallel()
	for _, size := range []int{10, spoolMemory - 1, spoolMemory + 1, 3 * spoolMemory} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := newSpool()
			defer s.close()
			fmt.Fprint(s, strings.Repeat("x", 2*spoolMemory)) // then forgotten
			s.reset()
			want := strings.Repeat("0123456789", size/10+1)[:size]
			for i := 0; i < len(want); i += 1000 {
				fmt.Fprint(s, want[i:min(i+1000, len(want))])
			}
			var got bytes.Buffer
			if err := s.copyTo(&got); err != nil {
				t.Fatal(err)
			}
			if (s.file != nil) != (size > spoolMemory) {
				t.Errorf("in a file: %v, want %v", s.file != nil, size > spoolMemory)
			}
			if got.String() != want {
				t.Errorf("got %d bytes back, want the %d written", got.Len(), len(want))
			}
		})
	}
}
