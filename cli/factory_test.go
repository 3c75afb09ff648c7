package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/cli"
	"github.com/cas-ml/cas/remote"
)

// memRemotes is a Factory.Remote handing out in-memory backends by name;
// "" is origin, the default.
func memRemotes(bes map[string]*remote.Mem) func(context.Context, *cas.Repo, string) (remote.Backend, *remote.Config, error) {
	return func(_ context.Context, _ *cas.Repo, name string) (remote.Backend, *remote.Config, error) {
		if name == "" {
			name = "origin"
		}
		be, ok := bes[name]
		if !ok {
			return nil, nil, errors.New("no remote named " + name)
		}
		return be, &remote.Config{Name: name, URL: "s3://" + name}, nil
	}
}

// noRemote is a Factory.Remote for a store without remotes.
func noRemote(context.Context, *cas.Repo, string) (remote.Backend, *remote.Config, error) {
	return nil, nil, nil
}

// runIn runs one command line in dir through f and returns its exit code
// and output, failing the test if the exit code is not want.
func runIn(t *testing.T, f *cli.Factory, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errOut := f.IO.Out.(*strings.Builder), f.IO.ErrOut.(*strings.Builder)
	out.Reset()
	errOut.Reset()
	if code := cli.Run(t.Context(), f, args); code != want {
		t.Fatalf("cas %s: got exit %d, want %d; stderr %q", strings.Join(args, " "), code, want, errOut.String())
	}
	return out.String(), errOut.String()
}

func memFactory(dir string, open func(context.Context, *cas.Repo, string) (remote.Backend, *remote.Config, error)) *cli.Factory {
	f, _, _ := testFactory(dir)
	f.IO.Out, f.IO.ErrOut = &strings.Builder{}, &strings.Builder{}
	f.Remote = open
	return f
}

// keysUnder lists the keys under prefix on be and their total size.
func keysUnder(t *testing.T, be remote.Backend, prefix string) (keys []string, size int64) {
	t.Helper()
	err := be.List(t.Context(), prefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		size += oi.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, size
}

// Commands reach remotes through the Factory, so a store can pull from,
// verify on and delete refs on an in-memory remote, without S3.
func TestCommandsUseFactoryRemote(t *testing.T) {
	// A source store uploads a pushed directory and its ref to the remote.
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "data", "a.txt"), []byte("hello, remote\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	origin := remote.NewMem()
	fs := memFactory(src, noRemote)
	runIn(t, fs, 0, "init")
	out, _ := runIn(t, fs, 0, "push", "-q", "--local", "--name", "data", filepath.Join(src, "data"))
	dig := strings.TrimSpace(out)
	r, err := cas.Open(t.Context(), filepath.Join(src, ".cas"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := r.Resolve(t.Context(), "data")
	if err == nil {
		_, err = r.Upload(t.Context(), origin, nil)
	}
	if err == nil {
		_, err = r.SetRefOn(t.Context(), origin, "data", *obj)
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	packs, packBytes := keysUnder(t, origin, "packs/")
	if len(packs) == 0 {
		t.Fatal("upload left no packs on the remote")
	}

	// An empty store pulls the ref from the remote the Factory hands out.
	dst := t.TempDir()
	fd := memFactory(dst, memRemotes(map[string]*remote.Mem{"origin": origin}))
	runIn(t, fd, 0, "init")
	out, _ = runIn(t, fd, 0, "pull", "data", "--json")
	var got struct {
		Digest  string `json:"digest"`
		Remote  string `json:"remote"`
		Objects int64  `json:"objects"`
		Bytes   int64  `json:"bytes"`
		Skipped int64  `json:"skipped"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("pull --json: %v in %q", err, out)
	}
	if got.Digest != dig || got.Remote != "origin" || got.Objects != int64(len(packs)) || got.Bytes != packBytes || got.Skipped != 0 {
		t.Errorf("pull: got digest %s, remote %s, %d objects, %d bytes, %d skipped; want %s, origin, %d, %d, 0",
			got.Digest, got.Remote, got.Objects, got.Bytes, got.Skipped, dig, len(packs), packBytes)
	}
	out, _ = runIn(t, fd, 0, "pull", "data", "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Objects != 0 || got.Skipped != int64(len(packs)) {
		t.Errorf("second pull: got %d objects, %d skipped; want 0, %d", got.Objects, got.Skipped, len(packs))
	}

	// The data is local now: it reads without any remote.
	fd.Remote = noRemote
	out, _ = runIn(t, fd, 0, "cat", dig+":a.txt")
	if out != "hello, remote\n" {
		t.Errorf("cat after pull: got %q, want %q", out, "hello, remote\n")
	}

	// verify --remote checks the remote's copy alone.
	fd.Remote = memRemotes(map[string]*remote.Mem{"origin": origin})
	out, _ = runIn(t, fd, 0, "verify", "data", "--remote", "origin", "--json")
	if !strings.Contains(out, `"ok": true`) {
		t.Errorf("verify --remote on an intact remote: got %s, want ok true", out)
	}

	// refs rm --remote deletes the ref there and nowhere else.
	out, _ = runIn(t, fd, 0, "refs", "rm", "data", "--remote", "origin")
	if out != "deleted ref data\n" {
		t.Errorf("refs rm: got %q, want %q", out, "deleted ref data\n")
	}
	if refs, _ := keysUnder(t, origin, "refs/"); len(refs) != 0 {
		t.Errorf("refs left on the remote after refs rm: %v", refs)
	}
	if _, stderr := runIn(t, fd, 1, "refs", "rm", "data", "--remote", "origin"); stderr != "cas: no ref named data\nhint: `cas refs` lists them\n" {
		t.Errorf("refs rm of a deleted ref: got stderr %q", stderr)
	}

	// A flipped byte in the remote's pack is damage (exit 3).
	for _, p := range packs {
		rc, err := origin.Get(t.Context(), p, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/3] ^= 0xff
		if err := origin.Put(t.Context(), p, bytes.NewReader(b), int64(len(b)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runIn(t, fd, 3, "verify", dig, "--remote", "origin", "-q")
}
