package manifest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cas-ml/cas/digest"
)

func TestReproducePass(t *testing.T) {
	t.Parallel()
	needTools(t, "git", "python3")
	ctx := context.Background()
	dir, repo := project(t)
	orig := runSeed(t, dir, repo, "s7", 7, os.Environ())
	// The reviewer's checkout lacks the inputs and outputs: remove them.
	for _, p := range []string{"data", "out"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	rep, err := Reproduce(ctx, repo, ReproduceOptions{Ref: "s7", Repo: dir, Tolerance: 0.01, Environ: os.Environ(), Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("Reproduce: %v\n%s", err, out.String())
	}
	if !rep.Pass || len(rep.Metrics) != 2 || rep.Original != orig.Digest.String() {
		t.Fatalf("report = %+v, want PASS on 2 metrics of %s", rep, orig.Digest)
	}
	// The recorded uncommitted diff was applied in the checkout.
	if got, _ := os.ReadFile(filepath.Join(rep.Dir, "train.py")); string(got) != trainPy+"# tuned\n" {
		t.Errorf("checked-out train.py = %q: the recorded diff was not applied", got)
	}
	// The inputs came back where the run had them.
	if got, _ := os.ReadFile(filepath.Join(rep.Dir, "data", "train.csv")); string(got) != "x,y\n1,2\n" {
		t.Errorf("restored input = %q", got)
	}
	m, err := Load(ctx, repo, mustDigest(t, rep.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != "reproduction" || m.ReproductionOf != orig.Digest || *m.Seeds.Seed != 7 {
		t.Errorf("reproduction manifest: kind %q of %q seed %v", m.Kind, m.ReproductionOf, m.Seeds.Seed)
	}
	// Same seed, same outputs: the run is deterministic.
	if m.Outputs[0].Digest != orig.Manifest.Outputs[0].Digest {
		t.Errorf("outputs differ: %s vs %s", m.Outputs[0].Digest, orig.Manifest.Outputs[0].Digest)
	}
}

func TestCompareMetrics(t *testing.T) {
	t.Parallel()
	want := map[string]float64{"acc": 0.9, "loss": 0, "n": 100}
	tests := []struct {
		name  string
		got   map[string]float64
		names []string
		pass  bool
	}{
		{"equal", map[string]float64{"acc": 0.9, "loss": 0, "n": 100}, nil, true},
		{"within 1%", map[string]float64{"acc": 0.905, "loss": 0.001, "n": 101}, nil, true},
		{"outside", map[string]float64{"acc": 0.8, "loss": 0, "n": 100}, nil, false},
		{"missing", map[string]float64{"acc": 0.9, "n": 100}, nil, false},
		{"only the named one", map[string]float64{"acc": 0.9, "n": 5}, []string{"acc"}, true},
		{"unknown name", map[string]float64{"acc": 0.9}, []string{"f1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks, pass, reason := CompareMetrics(want, tt.got, tt.names, 0.01)
			if pass != tt.pass {
				t.Errorf("pass = %v (%s), want %v; checks %+v", pass, reason, tt.pass, checks)
			}
		})
	}
	if _, pass, _ := CompareMetrics(map[string]float64{}, map[string]float64{}, nil, 0.01); pass {
		t.Error("a run without metrics cannot PASS")
	}
}

func TestReproduceRedactedCredentials(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	ctx := context.Background()
	dir, repo := project(t)
	url := "postgres://user:pw-" + randHex(t) + "@db/x"
	environ := append(os.Environ(), "DATABASE_URL="+url)
	cmd := []string{"sh", "-c", `printf '%s %s' "$1" "$DATABASE_URL" > seen.txt`, "sh", "--token=tok-" + randHex(t)}
	if _, err := Run(ctx, repo, Options{Name: "cred", WorkDir: dir, Command: cmd, Environ: environ,
		EnvVars: []string{"DATABASE_URL"}, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	rep, err := Reproduce(ctx, repo, ReproduceOptions{Ref: "cred", Repo: dir, Environ: environ,
		Stdout: io.Discard, Stderr: io.Discard, Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	// The recorded DATABASE_URL lost its password: this machine's is used.
	got, err := os.ReadFile(filepath.Join(rep.Dir, "seen.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "--token=[REDACTED] " + url; string(got) != want {
		t.Errorf("the reproduction saw %q, want %q", got, want)
	}
	if !slices.ContainsFunc(warnings, func(w string) bool { return strings.HasPrefix(w, "the recorded command had credentials removed") }) {
		t.Errorf("warnings = %q, want one about the removed credentials", warnings)
	}
}

// TestReproduceRefusesPathNames: names in a stored manifest (a bucket's)
// that would make paths outside the reproduction's directory are refused
// before anything is written.
func TestReproduceRefusesPathNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct{ name, run, input string }{
		{"input name", "ok", "../../escaped"},
		{"run name", "../escaped", "data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, repo := project(t)
			data := digest.Of([]byte("x"))
			if _, err := repo.PutObjects(ctx, []byte("x")); err != nil {
				t.Fatal(err)
			}
			m := &Manifest{Schema: Schema, Name: tt.run, Kind: "run", Status: "ok", Command: []string{"true"},
				Inputs: []Artifact{{Name: tt.input, Digest: data, Kind: "file", Size: 1}}}
			d, b, err := m.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := repo.PutObjects(ctx, b); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			_, err = Reproduce(ctx, repo, ReproduceOptions{Ref: d.String(), Dir: filepath.Join(work, "a", "b", "repro")})
			if !errors.Is(err, ErrNotManifest) {
				t.Fatalf("Reproduce: %v, want ErrNotManifest", err)
			}
			if entries, _ := os.ReadDir(work); len(entries) != 0 {
				t.Errorf("Reproduce wrote %v although it refused", entries)
			}
		})
	}
}

// The outputs a reproduction is judged on are every recorded output but
// the run's own directory, as the manifest records it: also when the
// store reading it has no directory (a remote read with --from), where
// every output used to be taken for the run directory and none compared.
func TestReproOutputsSkipOnlyTheRunDir(t *testing.T) {
	orig := &Manifest{
		WorkDir:   "/home/u/proj",
		Variables: map[string]string{"CAS_RUN_DIR": "/home/u/proj/.cas/runs/train"},
		Outputs: []Artifact{
			{Name: "run", Path: "/home/u/proj/.cas/runs/train"},
			{Name: "out", Path: "/home/u/proj/out"},
			{Name: "ckpt", Path: "/home/u/proj/ckpt/last.pt"},
		},
	}
	for _, storeDir := range []string{"", "/home/u/proj/.cas", "/elsewhere/.cas"} {
		_, compared := reproOutputs(orig, "", storeDir)
		var names []string
		for _, a := range compared {
			names = append(names, a.Name)
		}
		if strings.Join(names, ",") != "out,ckpt" {
			t.Errorf("store %q: compared %v, want out and ckpt", storeDir, names)
		}
	}
}
