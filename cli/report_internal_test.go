package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/remote"
)

// A reviewer's report of a signed pin on a remote, trusting nothing
// local: the signature checked with the key, every byte of the closure
// re-read from the remote.
func TestReportFromRemote(t *testing.T) {
	r, be, _, pubFile := pinnedRun(t)
	tmp := filepath.Dir(r.Dir)
	var out, errOut strings.Builder
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Getenv: func(string) string { return "" },
		WorkDir: func() (string, error) { return tmp, nil },
		Remote: func(context.Context, *cas.Repo, string) (remote.Backend, *remote.Config, error) {
			return be, &remote.Config{Name: "origin", URL: "s3://origin"}, nil
		}}
	defer f.Close()
	page := filepath.Join(tmp, "fig3.html")
	opts := &reportOptions{IO: f.IO, Factory: f, Ref: "fig3", Out: page, From: "origin", Verify: true, Key: pubFile, NoEnv: true, Tolerance: 0.01}
	if err := writeReportRun(t.Context(), opts); err != nil {
		t.Fatalf("report: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"signature     PASS      Pin fig3 is signed by key ",
		"bytes         PASS      Every byte verified: 3 files, 773 B re-read and re-hashed; 5 checks passed\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report printed\n%s\nwant a line %q", out.String(), want)
		}
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `<li class="ok" data-verdict="signature">`) || !strings.Contains(string(b), `<li class="ok" data-verdict="bytes">`) {
		t.Errorf("the page does not show the signature and the bytes verified")
	}

	// The same remote with a byte of the dataset changed: the report is
	// still written, and says the bytes are damaged.
	ctx := t.Context()
	var packs []string
	if err := be.List(ctx, "", func(oi remote.ObjectInfo) error {
		if strings.Contains(oi.Key, "pack") && !strings.Contains(oi.Key, "index") {
			packs = append(packs, oi.Key)
		}
		return nil
	}); err != nil || len(packs) == 0 {
		t.Fatalf("packs on the remote: %v %v", packs, err)
	}
	damaged := 0
	for _, k := range packs {
		rc, err := be.Get(ctx, k, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, []byte("x,y\n1,2\n")) // the dataset's one file
		if i < 0 {
			continue
		}
		data[i] = 'X'
		damaged++
		if err := be.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := be.Put(ctx, k, bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if damaged != 1 {
		t.Fatalf("found the dataset's file in %d packs, want 1", damaged)
	}
	out.Reset()
	// The page is written, and the exit status is verify's for damage.
	if err := writeReportRun(ctx, opts); !errors.Is(err, exitStatus(exitDamaged)) {
		t.Fatalf("report of damaged data: %v, want exit status %d\n%s", err, exitDamaged, errOut.String())
	}
	if !strings.Contains(out.String(), "bytes         FAIL      DAMAGED: ") {
		t.Errorf("report of damaged data printed\n%s\nwant bytes FAIL DAMAGED", out.String())
	}
}
