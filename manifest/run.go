package manifest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cas-ml/cas/buildinfo"
	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// Options describe a run to execute (Run) or one that already happened
// (Record).
type Options struct {
	Name    string
	Inputs  []string // NAME=PATH or NAME=REF
	Outputs []string // paths
	Seed    *int64
	Rank    int
	Config  string // a file recorded as an object
	Metrics string // a JSON object of numbers, read after the run
	EnvVars []string
	Command []string
	// Environ is the environment the command starts from (os.Environ()).
	Environ []string
	WorkDir string
	Stdout  io.Writer
	Stderr  io.Writer
	// Signals are forwarded to the command's process group.
	Signals <-chan os.Signal
	// Warn is told of things worth a line on the terminal.
	Warn func(string)

	// For Record: what is known of a run that already happened.
	ExitCode *int
	Started  time.Time
	Finished time.Time
}

// Result is a written manifest.
type Result struct {
	Digest   digest.Digest
	Manifest *Manifest
	Ref      string
	// Object is the stored manifest, as Ref names it.
	Object cas.Object
}

// maxLogInMemory bounds a log read back for redaction and storing.
const maxLogInMemory = 256 << 20

// Run captures code and environment, runs opts.Command with its output
// streamed and kept, then stores the outputs, logs and the manifest and
// points runs/NAME at it. A command that fails or is interrupted still
// gets a manifest; the returned error is only for cas's own failures.
func Run(ctx context.Context, r *cas.Repo, opts Options) (*Result, error) {
	return run(ctx, r, opts, nil)
}

// run is Run with a hook that adjusts the manifest before it is written.
func run(ctx context.Context, r *cas.Repo, opts Options, adjust func(*Manifest)) (*Result, error) {
	m, red, env, err := prepare(ctx, r, &opts, "run")
	if err != nil {
		return nil, err
	}
	if adjust != nil {
		adjust(m)
	}
	runDir := filepath.Join(r.Dir, "runs", opts.Name)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	env = setDefault(env, "CAS_RUN_DIR", runDir)
	m.Variables = CaptureVars(env, opts.EnvVars)
	// What a run of the same name left here is stored already (runDir
	// is an output); a new run's history must not be appended to it.
	for _, f := range []string{HistoryFile, DeterminismFile} {
		if err := os.Remove(filepath.Join(runDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}

	stdout, err := os.CreateTemp(r.Dir, "run-stdout-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(stdout.Name())
	defer stdout.Close()
	stderr, err := os.CreateTemp(r.Dir, "run-stderr-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(stderr.Name())
	defer stderr.Close()

	m.Started = r.Now()
	code, sig, runErr := execute(opts, env, io.MultiWriter(opts.Stdout, stdout), io.MultiWriter(opts.Stderr, stderr))
	m.Finished = r.Now()
	switch {
	case runErr != nil:
		fmt.Fprintf(io.MultiWriter(opts.Stderr, stderr), "cas: %v\n", runErr)
		m.Status, m.ExitCode = "failed", 127
	case sig != "":
		m.Status, m.ExitCode, m.Signal = "interrupted", code, sig
	case code != 0:
		m.Status, m.ExitCode = "failed", code
	default:
		m.Status = "ok"
	}
	// The command is over: what follows must finish even after a Ctrl-C.
	ctx = context.WithoutCancel(ctx)
	var logs [][]byte
	for _, f := range []*os.File{stdout, stderr} {
		b, err := readLog(f)
		if err != nil {
			return nil, err
		}
		logs = append(logs, red.Bytes(b))
	}
	ids, err := r.PutObjects(ctx, logs...)
	if err != nil {
		return nil, err
	}
	m.Logs = Logs{Stdout: &Object{Digest: ids[0], Size: int64(len(logs[0]))}, Stderr: &Object{Digest: ids[1], Size: int64(len(logs[1]))}}
	readDeterminism(runDir, m)
	history, final, err := readHistory(ctx, r, runDir)
	if err != nil && opts.Warn != nil {
		opts.Warn(fmt.Sprintf("metrics history %s not recorded: %v", filepath.Join(runDir, HistoryFile), err))
	}
	if history != nil {
		// The final values are the run's metrics unless --metrics names
		// a file (read in finish, over these).
		m.MetricsHistory, m.Metrics = history, final
	}
	if entries, _ := os.ReadDir(runDir); len(entries) > 0 {
		opts.Outputs = append(opts.Outputs, runDir)
	}
	return finish(ctx, r, &opts, m)
}

// Record writes the manifest of a run that already happened: the same
// capture as Run, with the command, times and exit code as given.
func Record(ctx context.Context, r *cas.Repo, opts Options) (*Result, error) {
	m, _, env, err := prepare(ctx, r, &opts, "record")
	if err != nil {
		return nil, err
	}
	m.Variables = CaptureVars(env, opts.EnvVars)
	m.Started, m.Finished = opts.Started, opts.Finished
	if m.Finished.IsZero() {
		m.Finished = r.Now()
	}
	if m.Started.IsZero() {
		m.Started = m.Finished
	}
	switch {
	case opts.ExitCode == nil:
		m.Status = "unknown"
	case *opts.ExitCode == 0:
		m.Status = "ok"
	default:
		m.Status, m.ExitCode = "failed", *opts.ExitCode
	}
	return finish(ctx, r, &opts, m)
}

// NewRunName names a run by its start time, with a random suffix.
func NewRunName(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// prepare checks the options and does the capture that comes before the
// command: inputs, code, environment, seeds and the variables it sets.
func prepare(ctx context.Context, r *cas.Repo, opts *Options, kind string) (*Manifest, *Redactor, []string, error) {
	if len(opts.Command) == 0 {
		return nil, nil, nil, errors.New("no command given")
	}
	if opts.Name == "" {
		opts.Name = NewRunName(r.Now())
	}
	if !cas.ValidRefName(RefPrefix + opts.Name) {
		return nil, nil, nil, fmt.Errorf("run name %q: %w", opts.Name, cas.ErrBadRefName)
	}
	if opts.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, nil, nil, err
		}
		opts.WorkDir = wd
	}
	red := NewRedactor(opts.Environ, opts.Command)
	m := &Manifest{Schema: Schema, Name: opts.Name, Kind: kind, Tool: buildinfo.Tool(), WorkDir: opts.WorkDir,
		Seeds: Seeds{Seed: opts.Seed, Rank: opts.Rank}}
	m.Command = red.Command(opts.Command)
	inputs, err := resolveInputs(ctx, r, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	m.Inputs = inputs

	skip := []string{realPath(opts.WorkDir, r.Dir)}
	for _, o := range opts.Outputs {
		skip = append(skip, realPath(opts.WorkDir, o))
	}
	if opts.Metrics != "" {
		skip = append(skip, realPath(opts.WorkDir, opts.Metrics))
	}
	git := CaptureGit(ctx, opts.WorkDir, skip)
	es := CaptureEnv(ctx, PythonFor(opts.Command), opts.Environ)
	m.Code, m.Environment = git.Code, es.Env
	var objs [][]byte
	// Each object is redacted before it is stored and measured.
	if git.Patch != nil {
		git.Patch = red.Bytes(git.Patch)
		objs = append(objs, git.Patch)
	}
	if es.Packages != nil {
		// pip freeze names packages installed from git+https://user:TOKEN@...
		es.Packages, _ = redactURLs(es.Packages)
		objs = append(objs, es.Packages)
	}
	var config []byte
	if opts.Config != "" {
		if config, err = os.ReadFile(opts.Config); err != nil {
			return nil, nil, nil, &OptionError{Option: "Config", Err: err}
		}
		config = red.Bytes(config)
		objs = append(objs, config)
	}
	ids, err := r.PutObjects(ctx, objs...)
	if err != nil {
		return nil, nil, nil, err
	}
	next := func(b []byte) *Object {
		o := &Object{Digest: ids[0], Size: int64(len(b))}
		ids = ids[1:]
		return o
	}
	if git.Patch != nil {
		m.Code.Patch = next(git.Patch)
	}
	if es.Packages != nil {
		m.Environment.Packages = next(es.Packages)
	}
	if config != nil {
		m.Config = next(config)
	}

	env := append([]string(nil), opts.Environ...)
	hashSeed := "0"
	if opts.Seed != nil {
		hashSeed = strconv.FormatInt(*opts.Seed, 10)
		env = setDefault(env, "CAS_SEED", hashSeed)
	}
	env = setDefault(env, "PYTHONHASHSEED", hashSeed)
	env = setDefault(env, "CUBLAS_WORKSPACE_CONFIG", ":4096:8")
	env = setDefault(env, "CAS_RANK", strconv.Itoa(opts.Rank))
	return m, red, env, nil
}

// relTo returns p relative to dir when p lies inside dir (as outside
// decides), else p as given.
func relTo(dir, p string) string {
	if outside(dir, p) {
		return p
	}
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, p)
	}
	rel, _ := filepath.Rel(dir, abs)
	return filepath.ToSlash(rel)
}

// readDeterminism takes the determinism settings the run reported in
// CAS_RUN_DIR (DeterminismFile) over the probed ones.
func readDeterminism(runDir string, m *Manifest) {
	b, err := os.ReadFile(filepath.Join(runDir, DeterminismFile))
	if err != nil || len(b) > 1<<20 {
		return
	}
	var d struct {
		Deterministic      *bool `json:"deterministic_algorithms"`
		CuDNNDeterministic *bool `json:"cudnn_deterministic"`
		CuDNNBenchmark     *bool `json:"cudnn_benchmark"`
	}
	if json.Unmarshal(b, &d) != nil || d.Deterministic == nil {
		return
	}
	if m.Environment.Torch == nil {
		m.Environment.Torch = &Torch{}
	}
	t := m.Environment.Torch
	t.Deterministic, t.SettingsFrom = *d.Deterministic, "run"
	if d.CuDNNDeterministic != nil {
		t.CuDNNDeterministic = *d.CuDNNDeterministic
	}
	if d.CuDNNBenchmark != nil {
		t.CuDNNBenchmark = *d.CuDNNBenchmark
	}
}

// outside reports whether path p (relative to dir when not absolute) lies
// outside dir.
func outside(dir, p string) bool {
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, p)
	}
	rel, err := filepath.Rel(dir, abs)
	return err != nil || rel == ".." || strings.HasPrefix(rel, "../")
}

// metricsPath resolves a metrics file against the work directory.
func metricsPath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// realPath makes p absolute against dir and resolves symlinks as far as
// the path exists, as git does for the paths it prints.
func realPath(dir, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(r, filepath.Base(p))
	}
	return p
}

// setDefault sets name in env unless the user already set it.
func setDefault(env []string, name, value string) []string {
	if lookupEnv(env, name) != "" {
		return env
	}
	return append(env, name+"="+value)
}

func resolveInputs(ctx context.Context, r *cas.Repo, opts *Options) ([]Artifact, error) {
	var out []Artifact
	seen := map[string]bool{}
	for _, in := range opts.Inputs {
		name, target, ok := strings.Cut(in, "=")
		if !ok || name == "" || target == "" {
			return nil, &OptionError{Option: "Inputs", Value: strconv.Quote(in), Err: errors.New("want NAME=PATH or NAME=REF")}
		}
		if seen[name] {
			return nil, &OptionError{Option: "Inputs", Err: fmt.Errorf("two inputs named %q", name)}
		}
		seen[name] = true
		a, err := artifact(ctx, r, name, target)
		if err != nil {
			return nil, &OptionError{Option: "Inputs", Value: name, Err: err}
		}
		if a.Path != "" && outside(opts.WorkDir, a.Path) && opts.Warn != nil {
			opts.Warn(fmt.Sprintf("input %s (%s) lies outside the run's directory: a reproduction restores it under inputs/%s and rewrites the command's mention of it; a path the command reads from elsewhere (a config file) will not be found", name, a.Path, name))
		}
		out = append(out, a)
	}
	return out, nil
}

// artifact pushes target if it is a path on disk, else resolves it as a REF.
func artifact(ctx context.Context, r *cas.Repo, name, target string) (Artifact, error) {
	if _, err := os.Lstat(target); err == nil {
		res, err := r.Push(ctx, []string{target}, cas.PushOptions{})
		if err != nil {
			return Artifact{}, err
		}
		return Artifact{Name: name, Path: target, Digest: res.Digest, Kind: res.Kind.String(), Size: res.Bytes}, nil
	}
	obj, err := r.Resolve(ctx, target)
	if err != nil {
		return Artifact{}, fmt.Errorf("%q is neither a path nor a stored REF: %w", target, err)
	}
	return Artifact{Name: name, Digest: obj.Digest, Kind: obj.Kind.String(), Size: obj.Size}, nil
}

// execute runs the command in its own process group, forwarding signals
// to the group, and returns its exit code and the signal that ended it.
func execute(opts Options, env []string, stdout, stderr io.Writer) (int, string, error) {
	cmd := exec.Command(opts.Command[0], opts.Command[1:]...)
	cmd.Env, cmd.Dir = env, opts.WorkDir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, "", err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-opts.Signals:
				if sig, ok := s.(syscall.Signal); ok {
					_ = syscall.Kill(-cmd.Process.Pid, sig)
				}
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), ws.Signal().String(), nil
		}
		return ee.ExitCode(), "", nil
	}
	if err != nil {
		return 0, "", err
	}
	return 0, "", nil
}

func readLog(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLogInMemory+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLogInMemory {
		b = append(b[:maxLogInMemory], "\n[cas: log cut at 256 MiB]\n"...)
	}
	return b, nil
}

// finish stores the outputs, reads the metrics, writes the manifest and
// sets runs/NAME.
func finish(ctx context.Context, r *cas.Repo, opts *Options, m *Manifest) (*Result, error) {
	m.Seconds = math.Round(m.Finished.Sub(m.Started).Seconds()*1000) / 1000
	seen := map[string]bool{}
	for _, path := range opts.Outputs {
		name := filepath.Base(filepath.Clean(path))
		if seen[name] {
			name = path
		}
		seen[name] = true
		if _, err := os.Lstat(path); err != nil {
			if opts.Warn != nil {
				opts.Warn(fmt.Sprintf("output %s was not written; not recorded", path))
			}
			continue
		}
		a, err := artifact(ctx, r, name, path)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", path, err)
		}
		a.Checkpoints = FindCheckpoints(path)
		m.Outputs = append(m.Outputs, a)
	}
	if opts.Metrics != "" {
		m.MetricsFile = relTo(opts.WorkDir, opts.Metrics)
		metrics, warnings, err := ReadMetrics(metricsPath(opts.WorkDir, opts.Metrics))
		if err != nil && opts.Warn != nil {
			opts.Warn(fmt.Sprintf("metrics: %v", err))
		}
		for _, w := range warnings {
			if opts.Warn != nil {
				opts.Warn("metrics: " + w)
			}
		}
		m.Metrics = metrics
	}
	d, b, err := m.Digest()
	if err != nil {
		return nil, err
	}
	if _, err := r.PutObjects(ctx, b); err != nil {
		return nil, err
	}
	// SetRef guards the run's whole closure from a GC of the store.
	ref := RefPrefix + m.Name
	obj := cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}
	if _, err := r.SetRef(ctx, ref, obj); err != nil {
		return nil, err
	}
	return &Result{Digest: d, Manifest: m, Ref: ref, Object: obj}, nil
}

// ReadMetrics reads a JSON object of numbers. Nested objects are
// flattened with "." between keys; other values are left out with a
// warning.
func ReadMetrics(path string) (map[string]float64, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return map[string]float64{}, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return map[string]float64{}, nil, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	out := map[string]float64{}
	var warnings []string
	var walk func(prefix string, v map[string]any)
	walk = func(prefix string, v map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(v)) {
			switch x := v[k].(type) {
			case json.Number:
				f, err := x.Float64()
				if err != nil || math.IsInf(f, 0) {
					warnings = append(warnings, fmt.Sprintf("%s%s: %s is out of range; left out", prefix, k, x))
					continue
				}
				out[prefix+k] = f
			case map[string]any:
				walk(prefix+k+".", x)
			default:
				warnings = append(warnings, fmt.Sprintf("%s%s is not a number; left out", prefix, k))
			}
		}
	}
	walk("", v)
	return out, warnings, nil
}
