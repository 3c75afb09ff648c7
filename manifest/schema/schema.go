package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/cas-ml/cas/digest"
)

// Schema names the version of the manifest format this cas writes.
// v2 added metrics_history; older cas rejects unknown fields, so the
// version says which fields a manifest may hold.
const Schema = "cas.manifest/v2"

// SchemaV1 is the first version, still read: a v1 manifest parses and
// re-encodes to the same bytes, so its digest is unchanged.
const SchemaV1 = "cas.manifest/v1"

// SchemaV3 added criteria, what a reproduction was judged by. cas writes
// it for a reproduction, which holds them, and Schema for every other
// manifest, which a cas that knows v2 still reads.
const SchemaV3 = "cas.manifest/v3"

// RefPrefix is where runs are named: a run called NAME has the ref runs/NAME.
const RefPrefix = "runs/"

// MaxSize bounds a manifest; large things are objects, not inline.
const MaxSize = 8 << 20

// ErrNotManifest reports bytes that are not a manifest of a known version.
var ErrNotManifest = errors.New("manifest: not a cas manifest")

// Manifest binds one run to what went into it and what came out.
// docs/manifest.schema.json is its JSON Schema.
type Manifest struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind is "run" (cas run), "record" (cas record) or "reproduction".
	Kind string `json:"kind"`
	// ReproductionOf is the digest of the manifest a reproduction re-ran.
	ReproductionOf digest.Digest `json:"reproduction_of,omitzero"`
	// Tool is the cas that wrote the manifest: "cas VERSION".
	Tool string `json:"tool,omitempty"`

	Command  []string  `json:"command"`
	WorkDir  string    `json:"workdir"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"duration_seconds"`
	// Status is "ok", "failed" (non-zero exit), "interrupted" (a signal)
	// or "unknown" (recorded after the fact without an exit code).
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`

	Inputs  []Artifact `json:"inputs"`
	Outputs []Artifact `json:"outputs"`

	Code        Code               `json:"code"`
	Environment Environment        `json:"environment"`
	Variables   map[string]string  `json:"variables"`
	Seeds       Seeds              `json:"seeds"`
	Config      *Object            `json:"config,omitempty"`
	Logs        Logs               `json:"logs"`
	Metrics     map[string]float64 `json:"metrics"`
	// MetricsFile is where the command wrote its metrics, relative to
	// WorkDir when inside it: where a reproduction looks for them.
	MetricsFile string `json:"metrics_file,omitempty"`
	// MetricsHistory is the run's per-step metrics (HistoryFile in
	// CAS_RUN_DIR), kept as an object; v2 and later.
	MetricsHistory *History `json:"metrics_history,omitempty"`
	// Criteria are what a reproduction was judged by, so that its verdict
	// can be given again, the same, from the manifest alone; v3 and
	// later, in a reproduction only. A reproduction without them (written
	// before v3) is judged by whatever tolerance its reader gives.
	Criteria *Criteria `json:"criteria,omitempty"`
}

// Criteria are the options of `cas reproduce` that decide its verdict.
type Criteria struct {
	// Tolerance is the largest relative difference of a metric (and,
	// with Curve, of a metrics history's value) that passes.
	Tolerance float64 `json:"tolerance"`
	// Exact makes any difference of an output or a metric a FAIL.
	Exact bool `json:"exact"`
	// Metrics are the metrics compared; empty: every recorded one.
	Metrics []string `json:"metrics"`
	// Curve compares the metrics history step by step too.
	Curve bool `json:"curve"`
}

// Artifact is a named input or output: a stored file or tree.
type Artifact struct {
	Name   string        `json:"name"`
	Path   string        `json:"path,omitempty"`
	Digest digest.Digest `json:"digest"`
	Kind   string        `json:"kind"`
	Size   int64         `json:"size"`
	// Checkpoints lists, for an output, the model files found in it and
	// the RNG states inside them.
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
}

// Checkpoint is what inspection found in one model file of an output.
type Checkpoint struct {
	Path    string        `json:"path"`
	Digest  digest.Digest `json:"digest"`
	Format  string        `json:"format"`
	Tensors int           `json:"tensors"`
	RNG     []RNGState    `json:"rng"`
}

// RNGState is one random-number-generator state found in a checkpoint.
type RNGState struct {
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	Fingerprint string `json:"fingerprint"`
	Summary     string `json:"summary"`
}

// Object is a large part of a manifest kept as a cas object.
type Object struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// Code is the state of the git repository the run started in.
type Code struct {
	Git    bool   `json:"git"`
	Reason string `json:"reason,omitempty"` // why Git is false
	Root   string `json:"root,omitempty"`
	Commit string `json:"commit,omitempty"`
	Branch string `json:"branch,omitempty"`
	Remote string `json:"remote,omitempty"` // credentials stripped
	Dirty  bool   `json:"dirty"`
	// Patch is `git diff --binary HEAD`: `git apply` on the commit
	// restores the working tree's tracked files.
	Patch     *Object  `json:"patch,omitempty"`
	Untracked []string `json:"untracked"`
}

// Environment is the machine and software the run saw.
type Environment struct {
	OS          string  `json:"os"`
	Kernel      string  `json:"kernel"`
	Arch        string  `json:"arch"`
	Hostname    string  `json:"hostname"`
	CPU         string  `json:"cpu"`
	CPUs        int     `json:"cpus"`
	MemoryBytes int64   `json:"memory_bytes"`
	Python      *Python `json:"python"`
	// Packages is the package list (pip freeze or conda list --export).
	Packages       *Object `json:"packages"`
	PackageManager string  `json:"package_manager,omitempty"`
	PackageCount   int     `json:"package_count"`
	Torch          *Torch  `json:"torch"`
	GPUs           []GPU   `json:"gpus"`
	// Absent lists the tools that were not found or did not answer in time.
	Absent []string `json:"absent"`
}

// Python is the interpreter the run used.
type Python struct {
	Executable string `json:"executable"`
	Version    string `json:"version"`
	NumPy      string `json:"numpy,omitempty"`
}

// Torch is PyTorch's view of the machine, where torch is importable.
type Torch struct {
	Version            string `json:"version"`
	CUDA               string `json:"cuda,omitempty"`
	CuDNN              string `json:"cudnn,omitempty"`
	CUDAAvailable      bool   `json:"cuda_available"`
	DeviceCount        int    `json:"device_count"`
	Deterministic      bool   `json:"deterministic_algorithms"`
	CuDNNDeterministic bool   `json:"cudnn_deterministic"`
	CuDNNBenchmark     bool   `json:"cudnn_benchmark"`
	// SettingsFrom says where the three determinism settings above come
	// from: "probed" (a separate interpreter before the run: torch's
	// defaults, not what the run set) or "run" (the run wrote them to
	// CAS_RUN_DIR/determinism.json, as the Python companion does).
	SettingsFrom string `json:"settings_from,omitempty"`
}

// DeterminismFile is the file in CAS_RUN_DIR where a run reports the
// determinism settings it actually used: a JSON object with the keys
// deterministic_algorithms, cudnn_deterministic and cudnn_benchmark.
const DeterminismFile = "determinism.json"

// GPU is one device nvidia-smi reports.
type GPU struct {
	Name        string `json:"name"`
	Driver      string `json:"driver"`
	MemoryBytes int64  `json:"memory_bytes"`
}

// Seeds are the seeds the run was given.
type Seeds struct {
	Seed *int64 `json:"seed"`
	Rank int    `json:"rank"`
}

// Logs are the run's output streams, kept as objects.
type Logs struct {
	Stdout *Object `json:"stdout,omitempty"`
	Stderr *Object `json:"stderr,omitempty"`
}

// normalize makes empty collections explicit, so that a manifest and its
// parsed copy encode the same.
func (m *Manifest) normalize() {
	if m.Command == nil {
		m.Command = []string{}
	}
	if m.Inputs == nil {
		m.Inputs = []Artifact{}
	}
	if m.Outputs == nil {
		m.Outputs = []Artifact{}
	}
	if m.Variables == nil {
		m.Variables = map[string]string{}
	}
	if m.Metrics == nil {
		m.Metrics = map[string]float64{}
	}
	if m.Code.Untracked == nil {
		m.Code.Untracked = []string{}
	}
	if m.Environment.GPUs == nil {
		m.Environment.GPUs = []GPU{}
	}
	if m.Environment.Absent == nil {
		m.Environment.Absent = []string{}
	}
	if m.MetricsHistory != nil && m.MetricsHistory.Names == nil {
		m.MetricsHistory.Names = []string{}
	}
	if m.Criteria != nil && m.Criteria.Metrics == nil {
		m.Criteria.Metrics = []string{}
	}
	m.Started = m.Started.UTC()
	m.Finished = m.Finished.UTC()
}

// Encode returns the canonical JSON (RFC 8785) of m: the bytes whose
// BLAKE3 is the manifest digest.
func (m *Manifest) Encode() ([]byte, error) {
	m.normalize()
	for k, v := range m.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("manifest: metric %q is %v, which JSON cannot hold", k, v)
		}
	}
	if why := m.checkVersion(); why != "" {
		// Parse would refuse it: nothing could read it back.
		return nil, errors.New("manifest: " + why)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("manifest: canonical form: %w", err)
	}
	if len(out) > MaxSize {
		// Its closure could not be read back (Parse refuses it), so
		// nothing could keep what it names.
		return nil, fmt.Errorf("manifest: %d bytes, over the %d a manifest may hold", len(out), MaxSize)
	}
	return out, nil
}

// Digest encodes m and returns its digest and bytes.
func (m *Manifest) Digest() (digest.Digest, []byte, error) {
	b, err := m.Encode()
	if err != nil {
		return digest.Zero, nil, err
	}
	return digest.Of(b), b, nil
}

// LooksLikeManifest reports whether b may be a manifest, cheaply.
func LooksLikeManifest(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) && bytes.Contains(b, []byte(`"schema":"cas.manifest/`))
}

// Parse reads a manifest. It accepts any JSON form of a known schema
// version and rejects unknown fields, so nothing in it goes unseen.
func Parse(b []byte) (*Manifest, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotManifest, len(b))
	}
	var probe struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotManifest, err)
	}
	if probe.Schema != Schema && probe.Schema != SchemaV1 && probe.Schema != SchemaV3 {
		if strings.HasPrefix(probe.Schema, "cas.manifest/") {
			return nil, fmt.Errorf("%w: schema %q is newer than this cas knows (%s)", ErrNotManifest, probe.Schema, SchemaV3)
		}
		return nil, fmt.Errorf("%w: schema %q", ErrNotManifest, probe.Schema)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrNotManifest)
	}
	if why := m.checkVersion(); why != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotManifest, why)
	}
	if h := m.MetricsHistory; h != nil && (h.Records < 0 || !sort.StringsAreSorted(h.Names)) {
		return nil, fmt.Errorf("%w: metrics_history: records below zero or names not sorted", ErrNotManifest)
	}
	m.normalize()
	return &m, nil
}

// checkVersion says what m holds that its schema version lacks, or what
// it holds that no version allows ("" when nothing).
func (m *Manifest) checkVersion() string {
	switch {
	case m.Schema == SchemaV1 && m.MetricsHistory != nil:
		return "metrics_history in a " + SchemaV1 + " manifest"
	case m.Criteria != nil && m.Schema != SchemaV3:
		return "criteria in a " + m.Schema + " manifest"
	case m.Criteria != nil && m.Kind != "reproduction":
		return "criteria in a manifest of kind " + m.Kind
	case m.Criteria != nil && !(m.Criteria.Tolerance >= 0):
		return "criteria: a negative tolerance"
	}
	return ""
}
