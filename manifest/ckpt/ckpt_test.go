package ckpt

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"
)

var update = flag.Bool("update", false, "rewrite testdata/ckpt/golden/*.json")

// testdata is the project's checkpoint fixtures, copied from real files
// written by PyTorch 1.13.1 and numpy 1.24 (see testdata/ckpt/README.md).
const testdata = "../../testdata/ckpt"

var fixtures = []string{
	"seed_layout_cpu.pt",
	"seed_layout_cuda2.pt",
	"seed_layout_legacy.pt",
	"weights_only.pt",
	"numpy_generator.pt",
	"array.npy",
	"arrays.npz",
}

func inspectFile(t *testing.T, name string) *Report {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Inspect(f, fi.Size(), name)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", name, err)
	}
	return rep
}

func inspectBytes(t *testing.T, b []byte) (*Report, error) {
	t.Helper()
	return Inspect(bytes.NewReader(b), int64(len(b)), "test")
}

func rngOf(t *testing.T, rep *Report, kind string) []RNGState {
	t.Helper()
	var out []RNGState
	for _, s := range rep.RNG {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// TestExpectedFacts asserts every fact torch and numpy computed when the
// fixtures were saved (testdata/ckpt/expected.json).
func TestExpectedFacts(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testdata, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		TorchCPUStateLen      int    `json:"torch_cpu_state_len"`
		TorchCPUStateBlake2b  string `json:"torch_cpu_state_blake2b_256"`
		NumpyMT19937Pos       int64  `json:"numpy_mt19937_pos"`
		NumpyMT19937KeyFirst  int64  `json:"numpy_mt19937_key_first"`
		PythonRandomVersion   int64  `json:"python_random_version"`
		PythonRandomStateLen  int    `json:"python_random_state_len"`
		PythonRandomStateLast int64  `json:"python_random_state_last"`
		CUDADevicesInCUDA2    int    `json:"cuda_devices_in_cuda2"`
		PCG64State            string `json:"pcg64_state"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a new fact must get an assertion here
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"seed_layout_cpu.pt", "seed_layout_cuda2.pt", "seed_layout_legacy.pt"} {
		t.Run(name, func(t *testing.T) {
			rep := inspectFile(t, name)
			cpu := rngOf(t, rep, RNGTorchCPU)
			if len(cpu) != 1 {
				t.Fatalf("got %d torch CPU states, want 1", len(cpu))
			}
			if got := len(cpu[0].Raw); got != want.TorchCPUStateLen {
				t.Errorf("torch CPU state: got %d bytes, want %d", got, want.TorchCPUStateLen)
			}
			if sum := blake2b.Sum256(cpu[0].Raw); hex.EncodeToString(sum[:]) != want.TorchCPUStateBlake2b {
				t.Errorf("torch CPU state BLAKE2b-256: got %x, want %s", sum, want.TorchCPUStateBlake2b)
			}
			if cpu[0].Path != "torch_rng_state" {
				t.Errorf("torch CPU state path: got %q, want torch_rng_state", cpu[0].Path)
			}

			np := rngOf(t, rep, RNGNumpyMT19937)
			if len(np) != 1 {
				t.Fatalf("got %d numpy MT19937 states, want 1", len(np))
			}
			st := np[0].Value.(Tuple)
			key := st[1].(Tuple)
			if pos := st[2].(int64); pos != want.NumpyMT19937Pos {
				t.Errorf("numpy pos: got %d, want %d", pos, want.NumpyMT19937Pos)
			}
			if len(key) != 624 || key[0].(int64) != want.NumpyMT19937KeyFirst {
				t.Errorf("numpy key: got %d words starting %v, want 624 starting %d", len(key), key[0], want.NumpyMT19937KeyFirst)
			}
			if np[0].Summary != "MT19937 pos 10" {
				t.Errorf("numpy summary: got %q, want %q", np[0].Summary, "MT19937 pos 10")
			}

			py := rngOf(t, rep, RNGPython)
			if len(py) != 1 {
				t.Fatalf("got %d Python random states, want 1", len(py))
			}
			pst := py[0].Value.(Tuple)
			words := pst[1].(Tuple)
			if pst[0].(int64) != want.PythonRandomVersion || len(words) != want.PythonRandomStateLen || words[len(words)-1].(int64) != want.PythonRandomStateLast {
				t.Errorf("Python random: got version %v, %d words, last %v; want %d, %d, %d",
					pst[0], len(words), words[len(words)-1], want.PythonRandomVersion, want.PythonRandomStateLen, want.PythonRandomStateLast)
			}
			if pst[2] != nil {
				t.Errorf("Python gauss_next: got %v, want None", pst[2])
			}

			cuda := rngOf(t, rep, RNGTorchCUDA)
			wantCUDA := 0
			if name == "seed_layout_cuda2.pt" {
				wantCUDA = want.CUDADevicesInCUDA2
			}
			if len(cuda) != wantCUDA {
				t.Fatalf("got %d CUDA states, want %d", len(cuda), wantCUDA)
			}
			for i, s := range cuda {
				if s.Device == nil || *s.Device != i || len(s.Raw) != 16 || s.Path != "cuda_rng_state."+itoa(int64(i)) {
					t.Errorf("CUDA state %d: got device %v, %d bytes at %q", i, s.Device, len(s.Raw), s.Path)
				}
			}
		})
	}

	t.Run("numpy_generator.pt", func(t *testing.T) {
		rep := inspectFile(t, "numpy_generator.pt")
		gen := rngOf(t, rep, RNGNumpyGenerator)
		if len(gen) != 1 {
			t.Fatalf("got %d numpy Generator states, want 1", len(gen))
		}
		d := gen[0].Value.(*Dict)
		bg, _ := d.Get("bit_generator")
		sv, _ := d.Get("state")
		state, _ := sv.(*Dict).Get("state")
		if bg != "PCG64" || intString(state) != want.PCG64State {
			t.Errorf("got %v state %v, want PCG64 state %s", bg, state, want.PCG64State)
		}
		if _, isBig := state.(*big.Int); !isBig {
			t.Errorf("PCG64 state: got %T, want a 128-bit *big.Int", state)
		}
		if !strings.Contains(gen[0].Summary, want.PCG64State) {
			t.Errorf("summary %q does not show the state", gen[0].Summary)
		}
	})
}

// TestGolden pins the report of every fixture, as --json prints it.
// Run with -update to rewrite testdata/ckpt/golden.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			rep := inspectFile(t, name)
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if err := enc.Encode(rep); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(testdata, "golden", strings.TrimSuffix(name, filepath.Ext(name))+".json")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("report of %s differs from %s (run go test -update if the change is intended):\n%s", name, golden, b.String())
			}
		})
	}
}

// TestLegacyMatchesZip: the same checkpoint saved in both torch formats
// has the same tensors, digests and fingerprints; only where the bytes sit
// differs.
func TestLegacyMatchesZip(t *testing.T) {
	t.Parallel()
	z, l := inspectFile(t, "seed_layout_cpu.pt"), inspectFile(t, "seed_layout_legacy.pt")
	if z.Format != FormatTorchZip || l.Format != FormatTorchLegacy {
		t.Fatalf("got formats %s and %s", z.Format, l.Format)
	}
	d := Diff(z, l)
	if !d.Equal() || d.Unchanged != 16 {
		t.Errorf("got diff %+v, want 16 unchanged tensors and equal states", d)
	}
	if len(z.RNG) != len(l.RNG) {
		t.Fatalf("got %d and %d RNG states", len(z.RNG), len(l.RNG))
	}
}

// TestTensorDigestIsDataDigest: a contiguous tensor's digest is BLAKE3 of
// its bytes exactly as the file stores them.
func TestTensorDigestIsDataDigest(t *testing.T) {
	t.Parallel()
	rep := inspectFile(t, "array.npy")
	raw, err := os.ReadFile(filepath.Join(testdata, "array.npy"))
	if err != nil {
		t.Fatal(err)
	}
	tt := rep.Tensors[0]
	data := raw[tt.Offset : tt.Offset+tt.Bytes]
	if got, want := tt.Digest, digestOf(data); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if tt.FileOffset != tt.Offset || tt.Offset != int64(len(raw))-48 {
		t.Errorf("got offset %d file offset %d, want both %d", tt.Offset, tt.FileOffset, len(raw)-48)
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	codes := func(ws []Warning) string {
		var c []string
		for _, w := range ws {
			c = append(c, w.Code)
		}
		return strings.Join(c, " ")
	}
	cpu := inspectFile(t, "seed_layout_cpu.pt")
	withoutRNG := func(kinds ...string) *Report {
		r := *cpu
		r.RNG = nil
		for _, s := range cpu.RNG {
			keep := true
			for _, k := range kinds {
				keep = keep && s.Kind != k
			}
			if keep {
				r.RNG = append(r.RNG, s)
			}
		}
		return &r
	}
	onCUDA := func(r *Report, devices ...string) *Report {
		c := *r
		c.Tensors = append([]Tensor(nil), r.Tensors...)
		for i, d := range devices {
			c.Tensors[i].Device = d
		}
		return &c
	}
	cuda2 := inspectFile(t, "seed_layout_cuda2.pt")
	tests := []struct {
		name string
		rep  *Report
		want string
	}{
		{"complete", cpu, ""},
		{"complete with cuda", cuda2, ""},
		{"weights only", inspectFile(t, "weights_only.pt"), WarnWeightsOnly},
		{"generator, no optimizer", inspectFile(t, "numpy_generator.pt"), ""},
		{"npz is not a training checkpoint", inspectFile(t, "arrays.npz"), ""},
		{"no torch rng", withoutRNG(RNGTorchCPU), WarnNoTorchRNG},
		{"no numpy rng", withoutRNG(RNGNumpyMT19937), WarnNoNumpyRNG},
		{"no python rng", withoutRNG(RNGPython), WarnNoPythonRNG},
		{"no rng at all", withoutRNG(RNGTorchCPU, RNGNumpyMT19937, RNGPython), WarnNoTorchRNG + " " + WarnNoNumpyRNG + " " + WarnNoPythonRNG},
		{"cuda tensors, no cuda rng", onCUDA(cpu, "cuda:0", "cuda:0"), WarnNoCUDARNG},
		{"cuda tensors on 3 devices, 2 states", onCUDA(cuda2, "cuda:0", "cuda:2"), WarnFewCUDARNG},
		{"cuda tensors on 2 devices, 2 states", onCUDA(cuda2, "cuda:0", "cuda:1"), ""},
		{"problems", &Report{Format: FormatNpy, Tensors: []Tensor{{}}, Problems: []string{"x: bad"}}, WarnUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := Lint(tt.rep)
			if got := codes(ws); got != tt.want {
				t.Errorf("got warnings %q, want %q (%v)", got, tt.want, ws)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	cpu, cuda2 := inspectFile(t, "seed_layout_cpu.pt"), inspectFile(t, "seed_layout_cuda2.pt")
	weights, gen := inspectFile(t, "weights_only.pt"), inspectFile(t, "numpy_generator.pt")

	if d := Diff(cpu, cpu); !d.Equal() || d.Unchanged != 16 || len(d.RNG) != 3 {
		t.Errorf("self diff: got %+v", d)
	}

	d := Diff(cpu, cuda2)
	if len(d.Tensors) != 0 || d.Unchanged != 16 {
		t.Errorf("cpu→cuda2 tensors: got %+v, want 16 unchanged", d.Tensors)
	}
	ops := map[string]string{}
	for _, c := range d.RNG {
		ops[c.Kind+" "+c.Path] = c.Op
	}
	wantOps := map[string]string{
		"torch_cpu torch_rng_state":      OpEqual,
		"numpy_mt19937 numpy_rng_state":  OpEqual,
		"python_random python_rng_state": OpEqual,
		"torch_cuda cuda_rng_state.0":    OpAdded,
		"torch_cuda cuda_rng_state.1":    OpAdded,
	}
	if len(ops) != len(wantOps) {
		t.Errorf("got RNG changes %v, want %v", ops, wantOps)
	}
	for k, want := range wantOps {
		if ops[k] != want {
			t.Errorf("%s: got %q, want %q", k, ops[k], want)
		}
	}

	// weights_only keys the same tensors without the "model_state_dict."
	// prefix that numpy_generator.pt spells "model.": all are added and
	// removed, none changed.
	d = Diff(weights, gen)
	var added, removed int
	for _, c := range d.Tensors {
		switch c.Op {
		case OpAdded:
			added++
		case OpRemoved:
			removed++
		default:
			t.Errorf("unexpected %s of %s", c.Op, c.Path)
		}
	}
	if added != 4 || removed != 4 || len(d.RNG) != 1 || d.RNG[0].Op != OpAdded {
		t.Errorf("weights→generator: got %d added, %d removed, RNG %+v", added, removed, d.RNG)
	}

	// A changed tensor and a changed state.
	changed := *cpu
	changed.Tensors = append([]Tensor(nil), cpu.Tensors...)
	changed.Tensors[0].Digest = digestOf([]byte("other"))
	changed.RNG = append([]RNGState(nil), cpu.RNG...)
	changed.RNG[1].Fingerprint = digestOf([]byte("other"))
	d = Diff(cpu, &changed)
	if d.Equal() || len(d.Tensors) != 1 || d.Tensors[0].Op != OpChanged || d.Tensors[0].Path != "model_state_dict.0.weight" {
		t.Errorf("got %+v, want model_state_dict.0.weight changed", d.Tensors)
	}
	if d.RNG[1].Op != OpChanged || d.RNG[0].Op != OpEqual {
		t.Errorf("got RNG %+v, want the numpy state changed", d.RNG)
	}
}

// TestFingerprintsMatchDocs runs the Python enc() of docs/checkpoints.md
// on the fixtures (with the standard library only: torch and numpy
// classes stubbed) and checks that cas computes the same encodings, so the
// page's recipe recomputes cas's fingerprints.
func TestFingerprintsMatchDocs(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	doc, err := os.ReadFile("../../docs/checkpoints.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```python\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no python block in docs/checkpoints.md")
	}
	loader, err := os.ReadFile(filepath.Join(testdata, "fingerprint_loader.py"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "fp.py")
	if err := os.WriteFile(script, []byte(block+"\n"+string(loader)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		file string
		keys []string
	}{
		{"seed_layout_cpu.pt", []string{"numpy_rng_state", "python_rng_state"}},
		{"numpy_generator.pt", []string{"np_generator_state"}},
	} {
		out, err := exec.Command(python, append([]string{script, filepath.Join(testdata, tt.file)}, tt.keys...)...).Output()
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		lines := strings.Fields(string(out))
		rep := inspectFile(t, tt.file)
		for i, key := range tt.keys {
			var st *RNGState
			for j := range rep.RNG {
				if rep.RNG[j].Path == key {
					st = &rep.RNG[j]
				}
			}
			if st == nil || i >= len(lines) {
				t.Fatalf("%s: no state at %s", tt.file, key)
			}
			enc, err := Canonical(st.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(enc); got != lines[i] {
				t.Errorf("%s %s: cas encodes %.80s…, the documented Python %.80s…", tt.file, key, got, lines[i])
			}
			if raw, _ := hex.DecodeString(lines[i]); digestOf(raw) != st.Fingerprint {
				t.Errorf("%s %s: fingerprint is not BLAKE3 of the documented encoding", tt.file, key)
			}
		}
	}
}
