package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/s3test"
)

// bucketKeys lists every key of bucket under prefix, straight from the
// server.
func bucketKeys(t *testing.T, srv *s3test.Server, bucket, prefix string) []string {
	t.Helper()
	be, err := remote.NewS3(context.Background(), srv.Config(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := be.List(t.Context(), "", func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkOneLine checks that stderr is one "cas: " line naming want, and a
// hint.
func checkOneLine(t *testing.T, stderr string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "cas: ") || !strings.HasPrefix(lines[1], "hint: ") {
		t.Fatalf("stderr = %q, want one error line and a hint", stderr)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("error line %q does not say %q", lines[0], w)
		}
	}
}

// A bucket behind a proxy that drops If-None-Match and If-Match is never
// trusted with refs: remote add refuses it, and a remote that starts
// dropping them after it was added gets nothing written, refs least of
// all, by push --to or by gc. A remote that cannot be probed for lack of
// write permission is added with a warning.
func TestRemoteIgnoringConditions(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	bucket := srv.NewBucket(t)
	url := "s3://" + bucket + "/team"
	strip := func() *s3test.Rule {
		return &s3test.Rule{Match: s3test.Conditional, Times: 1 << 30, Fault: s3test.StripConditions(srv.SecretKey)}
	}
	d := t.TempDir()
	writeTree(t, filepath.Join(d, "data"), 4)
	mustCas(t, d, "init", "--chunk-avg", "64KiB")

	// remote add through a stripping proxy fails and adds nothing.
	stripping := s3test.NewFaultProxy(t, srv.Endpoint, strip())
	code, out, errs := casIn(t, d, "remote", "add", "origin", url, "--endpoint", stripping.URL)
	if code != 1 || out != "" {
		t.Fatalf("remote add through a stripping proxy: exit %d, stdout %q; want 1 and nothing", code, out)
	}
	checkOneLine(t, errs, "remote origin not added", "s3://"+bucket+"/team ignores conditional writes (If-None-Match)")
	if out := mustCas(t, d, "remote", "list"); out != "" {
		t.Errorf("remote list after a refused add: %q", out)
	}

	// Directly, the probe passes in six requests (a seventh asks for the
	// bucket's region when none is given) and remote add is silent.
	counting := s3test.NewFaultProxy(t, srv.Endpoint)
	code, _, errs = casIn(t, d, "remote", "add", "origin", url, "--endpoint", counting.URL, "--region", srv.Region)
	if code != 0 || errs != "" {
		t.Fatalf("remote add: exit %d, stderr %q; want 0 and nothing", code, errs)
	}
	if n := counting.Requests(); n != 6 {
		t.Errorf("remote add made %d requests, want 6 (the probe)", n)
	}

	// The proxy starts dropping conditions: push --to writes nothing there,
	// and says so before reading the data.
	counting.Add(strip())
	before := len(counting.Seen())
	code, out, errs = casIn(t, d, "push", filepath.Join(d, "data"), "--to", "origin", "--name", "ds")
	if code != 1 || out != "" {
		t.Fatalf("push --to a stripping remote: exit %d, stdout %q; want 1 and nothing", code, out)
	}
	checkOneLine(t, errs, "s3://"+bucket+"/team ignores conditional writes")
	for _, r := range counting.Seen()[before:] {
		if r.Method == "PUT" && !strings.Contains(r.Path, "/"+remote.ProbePrefix) {
			t.Errorf("push wrote %s to the remote", r.Path)
		}
	}
	// Locally nothing was named either: the push failed before reading.
	if out := mustCas(t, d, "refs"); out != "" {
		t.Errorf("refs after the refused push: %q", out)
	}
	// A run, which opens the default remote, finds out at its first
	// conditional write, after the command ran.
	code, _, errs = casIn(t, d, "run", "--name", "r1", "--", "true")
	if code != 1 {
		t.Errorf("run with a stripping default remote: exit %d, want 1", code)
	}
	checkOneLine(t, errs, "ignores conditional writes")
	if keys := bucketKeys(t, srv, bucket, "team"); len(keys) != 0 {
		t.Errorf("the bucket holds %v, want nothing", keys)
	}

	// Read-only credentials: added with a one-line warning.
	ro := srv.ReadOnly(t)
	code, _, errs = casIn(t, d, "remote", "add", "ro", url, "--endpoint", ro.Endpoint)
	if code != 0 {
		t.Fatalf("remote add with read-only access: exit %d, stderr %q; want 0", code, errs)
	}
	if want := "warning: remote ro: could not check that " + url + " enforces conditional writes (these credentials may not write there); a write through it checks first\n"; errs != want {
		t.Errorf("remote add with read-only access: got stderr %q, want %q", errs, want)
	}
}
