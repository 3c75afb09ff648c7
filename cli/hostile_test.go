package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cli"
	"github.com/cas-ml/cas/remote"
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

// A bucket can write any ref. `cas pull NAME` must not take the kind and
// size a remote ref states on its word: they decide what is pulled (a
// size of 0 pulls nothing, a run said to be no manifest pulls none of its
// closure) and what the local ref records. A ref that lies is refused in
// one line naming it, and no local ref is made.
func TestHostilePullRef(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string]string{"data/a.txt": "hello, remote\n", "one.txt": "one file\n"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	origin := remote.NewMem()
	remotes := memRemotes(map[string]*remote.Mem{"origin": origin})
	fs := memFactory(src, remotes)
	runIn(t, fs, 0, "init")
	runIn(t, fs, 0, "push", "-q", "--name", "data", filepath.Join(src, "data"))
	runIn(t, fs, 0, "push", "-q", "--name", "one", filepath.Join(src, "one.txt"))
	runIn(t, fs, 0, "run", "--name", "r1", "--input", "data="+filepath.Join(src, "data"), "--", "true")

	// The honest refs, as the bucket holds them.
	honest := map[string][]byte{}
	fields := map[string]map[string]any{}
	for _, name := range []string{"data", "one", "runs/r1"} {
		b, err := remote.ReadAll(t.Context(), origin, "refs/"+name)
		if err != nil {
			t.Fatal(err)
		}
		honest[name] = b
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		fields[name] = m
	}
	short := func(name string) string { return strings.TrimPrefix(fields[name]["target"].(string), "blake3:")[:12] }
	size := func(name string) int64 { return int64(fields[name]["size"].(float64)) }
	put := func(name string, b []byte) {
		t.Helper()
		if err := origin.Put(t.Context(), "refs/"+name, bytes.NewReader(b), int64(len(b)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name    string
		ref     string
		set     map[string]any // fields changed; nil deletes
		wantErr string         // the whole of stderr
	}{
		{"dir said file", "data", map[string]any{"kind": "file"},
			fmt.Sprintf("cas: ref data on origin: %s is a directory of 14 bytes, not the file of 14 bytes it is named as\n", short("data"))},
		{"dir size lies", "data", map[string]any{"size": 12345},
			fmt.Sprintf("cas: ref data on origin: %s is a directory of 14 bytes, not the directory of 12345 bytes it is named as\n", short("data"))},
		{"file size 0", "one", map[string]any{"size": 0},
			fmt.Sprintf("cas: ref one on origin: %s is a file of 9 bytes, not the file of 0 bytes it is named as\n", short("one"))},
		{"file size lies", "one", map[string]any{"size": 77},
			fmt.Sprintf("cas: ref one on origin: %s is a file of 9 bytes, not the file of 77 bytes it is named as\n", short("one"))},
		{"file said dir", "one", map[string]any{"kind": "dir", "file": nil},
			fmt.Sprintf("cas: ref one on origin: %s is a file of 9 bytes, not the directory of 9 bytes it is named as\n", short("one"))},
		{"run size 0", "r1", map[string]any{"size": 0},
			fmt.Sprintf("cas: ref runs/r1 on origin: %s is a file of %d bytes, not the file of 0 bytes it is named as\n", short("runs/r1"), size("runs/r1"))},
		{"run untyped size 0", "r1", map[string]any{"size": 0, "type": nil},
			fmt.Sprintf("cas: ref runs/r1 on origin: %s is a file of %d bytes, not the file of 0 bytes it is named as\n", short("runs/r1"), size("runs/r1"))},
		{"run untyped said dir", "r1", map[string]any{"kind": "dir", "type": nil},
			fmt.Sprintf("cas: ref runs/r1 on origin: %s is a file of %d bytes, not the directory of %d bytes it is named as\n", short("runs/r1"), size("runs/r1"), size("runs/r1"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.ref
			if key == "r1" {
				key = "runs/r1"
			}
			forged := hostileRefJSON(t, fields[key], tt.set)
			put(key, forged)
			defer put(key, honest[key])

			fd := memFactory(t.TempDir(), remotes)
			runIn(t, fd, 0, "init")
			out, errs := runIn(t, fd, 1, "pull", tt.ref)
			if out != "" || errs != tt.wantErr {
				t.Errorf("cas pull %s: stdout %q, stderr %q; want nothing and %q", tt.ref, out, errs, tt.wantErr)
			}
			if out, _ := runIn(t, fd, 0, "refs"); out != "" {
				t.Errorf("cas refs after the refused pull: %q, want no local ref", out)
			}
		})
	}

	// Honest refs pull, and the local refs say what the data is.
	fd := memFactory(t.TempDir(), remotes)
	runIn(t, fd, 0, "init")
	for _, name := range []string{"data", "one", "r1"} {
		runIn(t, fd, 0, "pull", name)
	}
	fd.Remote = noRemote
	out, _ := runIn(t, fd, 0, "refs", "--json")
	var got []struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
		Size int64  `json:"size"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("refs --json: %v in %q", err, out)
	}
	want := fmt.Sprintf("[{data dir 14 } {one file 9 } {runs/r1 file %d manifest}]", size("runs/r1"))
	if s := fmt.Sprint(got); s != want {
		t.Errorf("local refs after honest pulls: got %s, want %s", s, want)
	}
	// The run's closure came with it: its input restores without the remote.
	runIn(t, fd, 0, "verify", "runs/r1")
}

// hostileRefJSON is the honest ref's fields with set applied (nil deletes).
func hostileRefJSON(t *testing.T, honest, set map[string]any) []byte {
	t.Helper()
	m := map[string]any{}
	for k, v := range honest {
		m[k] = v
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
