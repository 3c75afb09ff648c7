package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden is a v1 manifest with every section filled, fixed for all time:
// its canonical bytes and digest are a format promise.
func golden() *Manifest {
	seed := int64(7)
	return &Manifest{
		Schema: schema.SchemaV1, Name: "baseline", Kind: "run",
		Command: []string{"python3", "train.py", "--lr", "0.1"}, WorkDir: "/home/r/proj",
		Started:  time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		Finished: time.Date(2026, 11, 26, 12, 3, 20, 500_000_000, time.UTC),
		Seconds:  200.5, Status: "ok",
		Inputs:  []Artifact{{Name: "train", Path: "data/train", Digest: digest.Of([]byte("train")), Kind: "dir", Size: 1 << 30}},
		Outputs: []Artifact{{Name: "out", Path: "out", Digest: digest.Of([]byte("out")), Kind: "dir", Size: 12345}},
		Code: Code{Git: true, Root: "/home/r/proj", Commit: "0123456789abcdef0123456789abcdef01234567", Branch: "main",
			Remote: "https://example.com/r/proj.git", Dirty: true, Patch: &Object{Digest: digest.Of([]byte("patch")), Size: 5}, Untracked: []string{"notes é.txt"}},
		Environment: Environment{OS: "linux", Kernel: "6.1.0", Arch: "amd64", Hostname: "gpu01", CPU: "EPYC", CPUs: 64, MemoryBytes: 256 << 30,
			Python: &Python{Executable: "/usr/bin/python3", Version: "3.11.7", NumPy: "1.24.2"}, Packages: &Object{Digest: digest.Of([]byte("pkgs")), Size: 4},
			PackageManager: "pip", PackageCount: 2, Torch: &Torch{Version: "2.3.0", CUDA: "12.1", CuDNN: "8902", CUDAAvailable: true, DeviceCount: 2},
			GPUs: []GPU{{Name: "NVIDIA A100", Driver: "535.54", MemoryBytes: 80 << 30}}, Absent: []string{}},
		Variables: map[string]string{"PYTHONHASHSEED": "7", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"},
		Seeds:     Seeds{Seed: &seed, Rank: 0},
		Logs:      Logs{Stdout: &Object{Digest: digest.Of([]byte("o")), Size: 1}, Stderr: &Object{Digest: digest.Of(nil), Size: 0}},
		Metrics:   map[string]float64{"acc": 0.9125, "loss": 1e-7, "steps": 100000},
	}
}

// goldenV2 is golden in the current schema, with a metrics history.
func goldenV2() *Manifest {
	m := golden()
	m.Schema = Schema
	m.MetricsHistory = &schema.History{Object: Object{Digest: digest.Of([]byte("history")), Size: 7}, Records: 3, Names: []string{"acc", "loss"}}
	return m
}

// goldenV3 is a reproduction of golden, with the criteria it was judged
// by: the v3 form.
func goldenV3() *Manifest {
	m := goldenV2()
	m.Schema, m.Kind, m.Name = SchemaV3, "reproduction", "baseline-repro-20261127-090000"
	m.ReproductionOf = digest.Of([]byte("baseline"))
	m.Criteria = &Criteria{Tolerance: 0.001, Exact: false, Metrics: []string{"acc"}, Curve: true}
	return m
}

func TestManifestGolden(t *testing.T) {
	t.Parallel()
	for file, m := range map[string]*Manifest{"golden.json": golden(), "golden_v2.json": goldenV2(), "golden_v3.json": goldenV3()} {
		checkGolden(t, file, m)
	}
}

func checkGolden(t *testing.T, file string, m *Manifest) {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", file)
	if *update {
		out := append(append([]byte{}, b...), '\n')
		out = append(out, []byte(digest.Of(b).String()+"\n")...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(want), "\n", 3)
	if lines[0] != string(b) {
		t.Errorf("%s: canonical encoding changed:\ngot  %s\nwant %s", file, b, lines[0])
	}
	if got := digest.Of(b).String(); got != lines[1] {
		t.Errorf("%s: digest = %s, want %s", file, got, lines[1])
	}
}

// TestV1StillReads: the bytes of a v1 manifest, as written by cas before
// v2, parse and re-encode to the same bytes, so its digest is unchanged
// and it stays v1.
func TestV1StillReads(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(raw), "\n", 3)
	m, err := Parse([]byte(lines[0]))
	if err != nil {
		t.Fatal(err)
	}
	if m.Schema != "cas.manifest/v1" || m.MetricsHistory != nil {
		t.Errorf("parsed a v1 manifest as %q with history %v", m.Schema, m.MetricsHistory)
	}
	d, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != lines[0] || d.String() != lines[1] {
		t.Errorf("v1 manifest re-encoded to %s (%s), want %s (%s)", b, d, lines[0], lines[1])
	}
	if Schema != "cas.manifest/v2" {
		t.Errorf("Schema = %q", Schema)
	}
}

func TestParseRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range []*Manifest{golden(), goldenV2(), goldenV3()} {
		roundTrip(t, m)
	}
}

func roundTrip(t *testing.T, m *Manifest) {
	t.Helper()
	b, _ := m.Encode()
	// Any JSON form of it (indented, keys reordered) parses to the same.
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, b, "", "  ")
	for _, in := range [][]byte{b, pretty.Bytes()} {
		m, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := m.Encode()
		if !bytes.Equal(got, b) {
			t.Errorf("round trip changed the encoding:\n%s\n%s", got, b)
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	b, _ := golden().Encode()
	v2, _ := goldenV2().Encode()
	v3, _ := goldenV3().Encode()
	tests := map[string]string{
		"criteria in v2":     strings.Replace(string(v3), `"schema":"cas.manifest/v3"`, `"schema":"cas.manifest/v2"`, 1),
		"criteria in a run":  strings.Replace(string(v3), `"kind":"reproduction"`, `"kind":"run"`, 1),
		"negative tolerance": strings.Replace(string(v3), `"tolerance":0.001`, `"tolerance":-0.001`, 1),
		"not json":           "{",
		"no schema":          `{"name":"x"}`,
		"newer schema":       `{"schema":"cas.manifest/v4"}`,
		"history in v1":      strings.Replace(string(v2), `"schema":"cas.manifest/v2"`, `"schema":"cas.manifest/v1"`, 1),
		"names unsorted":     strings.Replace(string(v2), `["acc","loss"]`, `["loss","acc"]`, 1),
		"other schema":       `{"schema":"oci.image/v1"}`,
		"unknown field":      strings.Replace(string(b), `"kind":"run"`, `"kind":"run","surprise":1`, 1),
		"trailing data":      string(b) + "{}",
		"wrong type":         strings.Replace(string(b), `"exit_code":0`, `"exit_code":"0"`, 1),
	}
	for name, in := range tests {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrNotManifest) {
			t.Errorf("%s: got %v, want ErrNotManifest", name, err)
		}
	}
	m := golden()
	m.Metrics["nan"] = 0
	m.Metrics["nan"] = m.Metrics["nan"] / 0 * 0
	if _, err := m.Encode(); err == nil {
		t.Error("Encode accepted a NaN metric")
	}
	// What Parse refuses, Encode does not write.
	m = goldenV3()
	m.Schema = Schema
	if b, err := m.Encode(); err == nil {
		t.Errorf("Encode wrote criteria in a %s manifest: %s", Schema, b)
	}
}

// The JSON Schema in docs names every field the Go type has, and no other.
func TestSchemaFileMatchesType(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/manifest.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	typ := reflect.TypeOf(Manifest{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if _, ok := schema.Properties[name]; !ok {
			t.Errorf("schema lacks the field %q", name)
		}
		delete(schema.Properties, name)
	}
	for name := range schema.Properties {
		t.Errorf("schema has %q, which the manifest type lacks", name)
	}
}

func FuzzParse(f *testing.F) {
	b, _ := golden().Encode()
	f.Add(b)
	f.Add([]byte(`{"schema":"cas.manifest/v1"}`))
	v2, _ := goldenV2().Encode()
	f.Add(v2)
	v3, _ := goldenV3().Encode()
	f.Add(v3)
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Parse(in)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			return // e.g. a metric that JSON cannot hold after parsing
		}
		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		enc2, _ := m2.Encode()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

func TestSecretsAndVariables(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"AWS_SECRET_ACCESS_KEY": true, "HF_TOKEN": true, "WANDB_API_KEY": true, "DB_PASSWORD": true,
		"GOOGLE_APPLICATION_CREDENTIALS": true, "my_auth_header": true, "OMP_NUM_THREADS": false, "PYTHONHASHSEED": false,
	} {
		if got := IsSecretName(name); got != want {
			t.Errorf("IsSecretName(%q) = %v, want %v", name, got, want)
		}
	}
	env := []string{"OMP_NUM_THREADS=4", "HF_TOKEN=hf_abcdef123", "PATH=/bin", "LR=0.1"}
	got := CaptureVars(env, []string{"LR", "HF_TOKEN"})
	if !reflect.DeepEqual(got, map[string]string{"OMP_NUM_THREADS": "4", "LR": "0.1"}) {
		t.Errorf("CaptureVars = %v", got)
	}
	if got := NewRedactor(env, nil).String("token=hf_abcdef123!"); got != "token=[REDACTED]!" {
		t.Errorf("redacted = %q", got)
	}
}

func TestStripCredentials(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:ghp_secret@github.com/o/r.git": "https://github.com/o/r.git",
		"https://github.com/o/r.git":                 "https://github.com/o/r.git",
		"git@github.com:o/r.git":                     "git@github.com:o/r.git",
		"ssh://git@host:22/o/r":                      "ssh://host:22/o/r",
	} {
		if got := StripCredentials(in); got != want {
			t.Errorf("StripCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadMetrics(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "m.json")
	_ = os.WriteFile(p, []byte(`{"acc": 0.5, "loss": {"train": 1, "val": 2}, "note": "x", "n": 3}`), 0o644)
	got, warnings, err := ReadMetrics(p)
	want := map[string]float64{"acc": 0.5, "loss.train": 1, "loss.val": 2, "n": 3}
	if err != nil || !reflect.DeepEqual(got, want) || len(warnings) != 1 {
		t.Errorf("ReadMetrics = %v, %v, %v; want %v and one warning", got, warnings, err, want)
	}
	_ = os.WriteFile(p, []byte(`[1,2]`), 0o644)
	if _, _, err := ReadMetrics(p); err == nil {
		t.Error("ReadMetrics accepted a JSON array")
	}
}

func TestParsePackages(t *testing.T) {
	t.Parallel()
	got := ParsePackages([]byte("# comment\nnumpy==1.24.2\nTorch==2.3.0\nmypkg @ file:///src/mypkg\nconda-pkg=1.2=py311_0\n" +
		"private @ git+https://user:ghp_tok@github.com/o/private.git@abc\n"))
	want := map[string]string{"numpy": "1.24.2", "torch": "2.3.0", "mypkg": "file:///src/mypkg", "conda-pkg": "1.2",
		"private": "git+https://user:[REDACTED]@github.com/o/private.git@abc"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePackages = %v, want %v", got, want)
	}
}
