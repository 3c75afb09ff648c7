package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// cas ls prints names that hold controls, bidi overrides or bytes that
// are not UTF-8 Go-quoted, so that no name can move the cursor, recolour
// the terminal or reorder the line; --json gives every name exactly.
func TestLsEscapesNames(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"plain.txt", "plain.txt"},
		{"latin-é", "latin-é"},
		{"two words", `"two words"`},
		{"bell\x07", `"bell\a"`},
		{"esc\x1b[31m", `"esc\x1b[31m"`},
		{"del\x7f", `"del\x7f"`},
		{"csi\u009b31m", `"csi\u009b31m"`}, // C1 control, "\xc2\x9b"
		{"nel\u0085", `"nel\u0085"`},
		{"lre\u202a", `"lre\u202a"`},
		{"rle\u202b", `"rle\u202b"`},
		{"pdf\u202c", `"pdf\u202c"`},
		{"lro\u202d", `"lro\u202d"`},
		{"rlo\u202etxt.exe", `"rlo\u202etxt.exe"`},
		{"lri\u2066", `"lri\u2066"`},
		{"rli\u2067", `"rli\u2067"`},
		{"fsi\u2068", `"fsi\u2068"`},
		{"pdi\u2069", `"pdi\u2069"`},
		{"bad\xff", `"bad\xff"`},
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if err := os.WriteFile(filepath.Join(data, tt.name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustCas(t, dir, "init")
	mustCas(t, dir, "push", "-q", data, "--name", "ds")

	// Entries come sorted by the bytes of their names.
	slices.SortFunc(tests, func(a, b struct{ name, want string }) int { return strings.Compare(a.name, b.name) })
	var entries []struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(mustCas(t, dir, "ls", "ds", "--json")), &entries); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(mustCas(t, dir, "ls", "ds"), "\n"), "\n")
	if len(lines) != len(tests) || len(entries) != len(tests) {
		t.Fatalf("ls: got %d lines and %d JSON entries, want %d", len(lines), len(entries), len(tests))
	}
	const nameAt = len("file ") + 10 + 2 + 12 + 2 // kind, size, digest, name
	for i, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := lines[i][nameAt:]; got != tt.want {
				t.Errorf("ls printed %q, want %q", got, tt.want)
			}
			// --json names are exact where JSON can hold them: it has no
			// way to carry bytes that are not UTF-8.
			if utf8.ValidString(tt.name) && entries[i].Path != tt.name {
				t.Errorf("ls --json path %q, want %q", entries[i].Path, tt.name)
			}
		})
	}
}
