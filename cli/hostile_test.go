package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cli"
)

// A ref whose file field climbs out of DEST (a shared bucket or a synced
// .cas can serve one) must not make `cas restore REF .` write outside
// the working directory, with or without --force; `cas refs` still lists
// the intact refs beside it. The cas package's hostile kit covers the
// library; this is what a user types.
func TestHostileRefRestoreDot(t *testing.T) {
	victim := []byte("victim: a write outside DEST changes me\n")
	tests := []struct {
		name  string
		file  string
		force bool
	}{
		{"dotdot", "../x", false},
		{"dotdot force", "../x", true},
		{"outside force", "../../outside/x", true},
		{"slash force", "sub/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			proj := filepath.Join(root, "proj")
			work := filepath.Join(proj, "work")
			victims := []string{filepath.Join(proj, "x"), filepath.Join(root, "outside", "x")}
			for _, d := range []string{work, filepath.Join(root, "outside")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range victims {
				if err := os.WriteFile(v, victim, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(proj, "a.txt"), []byte("the honest bytes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			f, _, errOut := testFactory(proj)
			for _, args := range [][]string{{"init"}, {"push", filepath.Join(proj, "a.txt"), "--name", "good"}} {
				if code := cli.Run(ctx, f, args); code != 0 {
					t.Fatalf("cas %s: exit %d: %s", strings.Join(args, " "), code, errOut)
				}
			}

			// Forge refs/evil from refs/good, with another file name.
			refs := filepath.Join(proj, ".cas", "store", "refs")
			b, err := os.ReadFile(filepath.Join(refs, "good"))
			if err != nil {
				t.Fatal(err)
			}
			var ref map[string]any
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			ref["name"], ref["file"] = "evil", tt.file
			if b, err = json.Marshal(ref); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(refs, "evil"), b, 0o644); err != nil {
				t.Fatal(err)
			}

			// DEST is the working directory, as `.` names it (restore
			// resolves DEST against the process's directory, so it is
			// given whole here).
			f, _, errOut = testFactory(work)
			args := []string{"restore", "evil", work}
			if tt.force {
				args = []string{"restore", "--force", "evil", work}
			}
			code := cli.Run(ctx, f, args)
			for _, v := range victims {
				if got, err := os.ReadFile(v); err != nil || !bytes.Equal(got, victim) {
					t.Errorf("cas %s: %s now holds %q (%v), want it untouched", strings.Join(args, " "), v, got, err)
				}
			}
			if code == 0 {
				t.Errorf("cas %s: exit 0, want the ref reported as damaged", strings.Join(args, " "))
			}
			if first, _, _ := strings.Cut(errOut.String(), "\n"); !strings.Contains(first, "evil") {
				t.Errorf("cas %s: stderr %q, want a first line naming the ref evil", strings.Join(args, " "), errOut)
			}

			f, out, errOut := testFactory(proj)
			cli.Run(ctx, f, []string{"refs", "--json"})
			if !strings.Contains(out.String(), `"good"`) {
				t.Errorf("cas refs --json: stdout %q, stderr %q; want the intact ref good listed", out, errOut)
			}
		})
	}
}

// One unreadable ref must not hide the others from `cas refs`, nor stop
// `cas ls` and `cas restore` of an intact one.
func TestHostileUnreadableRef(t *testing.T) {
	ctx := context.Background()
	proj := filepath.Join(t.TempDir(), "proj")
	if err := os.MkdirAll(proj, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proj, "a.txt"), []byte("the honest bytes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _, errOut := testFactory(proj)
	for _, args := range [][]string{{"init"}, {"push", filepath.Join(proj, "a.txt"), "--name", "good"}} {
		if code := cli.Run(ctx, f, args); code != 0 {
			t.Fatalf("cas %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	if err := os.WriteFile(filepath.Join(proj, ".cas", "store", "refs", "broken"), []byte(`{"target": `), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(proj, "out.txt")
	for _, tc := range []struct {
		args []string
		want string // on stdout
	}{
		{[]string{"refs", "--json"}, `"good"`},
		{[]string{"ls", "good"}, "a.txt"},
		{[]string{"restore", "good", dest}, ""},
	} {
		f, out, errOut := testFactory(proj)
		code := cli.Run(ctx, f, tc.args)
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("cas %s: exit %d, stdout %q, stderr %q; want %q listed", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
		if tc.args[0] != "refs" && code != 0 {
			t.Errorf("cas %s: exit %d, stderr %q; want 0 beside an unreadable ref", strings.Join(tc.args, " "), code, errOut)
		}
	}
	if got, err := os.ReadFile(dest); err != nil || string(got) != "the honest bytes\n" {
		t.Errorf("restore good: %s holds %q (%v)", dest, got, err)
	}
}
