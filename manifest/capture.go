package manifest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// toolTimeout bounds each external tool the capture runs; one that does
// not answer in time is recorded as absent.
var toolTimeout = 30 * time.Second

// runTool runs a command with a timeout and returns its standard output.
func runTool(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(errb.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg != "" {
			return nil, errors.New(msg)
		}
		return nil, err
	}
	return out.Bytes(), nil
}

// GitState is the code part of a capture, with the patch bytes that the
// manifest refers to by digest.
type GitState struct {
	Code  Code
	Patch []byte
}

// MaxUntracked is how many untracked files a manifest lists; past it, its
// last entry says how many more there are.
const MaxUntracked = 10000

// CaptureGit records the repository dir is in. Untracked files under any
// of the absolute paths in skip (the run's declared outputs, the store)
// are products, not code, and are left out. Not being in a git
// repository, or git being absent, is recorded, not an error.
func CaptureGit(ctx context.Context, dir string, skip []string) GitState {
	git := func(args ...string) (string, error) {
		out, err := runTool(ctx, dir, nil, "git", args...)
		return strings.TrimSpace(string(out)), err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return GitState{Code: Code{Reason: "git is not installed", Untracked: []string{}}}
	}
	root, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return GitState{Code: Code{Reason: "not a git repository", Untracked: []string{}}}
	}
	c := Code{Git: true, Root: root, Untracked: []string{}}
	c.Commit, _ = git("rev-parse", "--verify", "-q", "HEAD")
	c.Branch, _ = git("symbolic-ref", "--short", "-q", "HEAD")
	if remote, err := git("remote", "get-url", "origin"); err == nil {
		c.Remote = StripCredentials(remote)
	}
	var st GitState
	if status, err := runTool(ctx, root, nil, "git", "status", "--porcelain=v1", "-z", "--untracked-files=all"); err == nil {
		for _, rec := range bytes.Split(status, []byte{0}) {
			if len(rec) < 4 {
				continue
			}
			if bytes.HasPrefix(rec, []byte("?? ")) {
				path := string(rec[3:])
				if underAny(realPath(root, path), skip) {
					continue
				}
				c.Untracked = append(c.Untracked, path)
			}
			c.Dirty = true
		}
	}
	if c.Commit != "" && c.Dirty {
		// Tracked changes, staged or not, against HEAD; binary-safe.
		if patch, err := runTool(ctx, root, nil, "git", "diff", "--binary", "--no-color", "--no-ext-diff", "HEAD"); err == nil && len(patch) > 0 {
			st.Patch = patch
		}
	}
	slices.Sort(c.Untracked)
	if n := len(c.Untracked); n > MaxUntracked {
		// A manifest stays small (schema.MaxSize): the first names, and a
		// last entry saying how many more there are.
		c.Untracked = append(c.Untracked[:MaxUntracked-1], fmt.Sprintf("... and %d more untracked files, not listed", n-MaxUntracked+1))
	}
	st.Code = c
	return st
}

func underAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// StripCredentials removes a user name and password from a remote URL.
func StripCredentials(remote string) string {
	u, err := url.Parse(remote)
	if err != nil || u.Scheme == "" || u.Host == "" {
		// scp-like "user@host:path" names no secret beyond the user.
		return remote
	}
	u.User = nil
	return u.String()
}

// EnvState is the environment part of a capture, with the package list
// that the manifest refers to by digest.
type EnvState struct {
	Env      Environment
	Packages []byte
}

// pythonProbe prints what the manifest records of Python, numpy and torch.
const pythonProbe = `
import json, sys
out = {"executable": sys.executable, "version": sys.version.split()[0]}
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception:
    pass
try:
    import torch
    t = {"version": torch.__version__, "cuda": torch.version.cuda or "",
         "cuda_available": bool(torch.cuda.is_available()),
         "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
         "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
         "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
    try:
        v = torch.backends.cudnn.version()
        t["cudnn"] = str(v) if v else ""
    except Exception:
        t["cudnn"] = ""
    t["device_count"] = torch.cuda.device_count() if t["cuda_available"] else 0
    out["torch"] = t
except Exception:
    pass
print(json.dumps(out))
`

// PythonFor picks the interpreter a command runs: the command itself when
// it is a Python, else python3 from PATH.
func PythonFor(command []string) string {
	if len(command) > 0 && strings.HasPrefix(filepath.Base(command[0]), "python") {
		return command[0]
	}
	return "python3"
}

// CaptureEnv records the machine and software. Every missing or slow tool
// is listed in Absent; nothing here fails.
func CaptureEnv(ctx context.Context, python string, env []string) EnvState {
	var st EnvState
	e := &st.Env
	e.OS, e.Arch, e.CPUs = runtime.GOOS, runtime.GOARCH, runtime.NumCPU()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		e.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	e.Hostname, _ = os.Hostname()
	e.CPU = cpuModel()
	e.MemoryBytes = memTotal()
	e.GPUs = []GPU{}

	if out, err := runTool(ctx, "", env, python, "-c", pythonProbe); err == nil {
		var probe struct {
			Python
			Torch *Torch `json:"torch"`
		}
		if json.Unmarshal(out, &probe) == nil {
			e.Python = &probe.Python
			e.Torch = probe.Torch
			if e.Torch != nil {
				e.Torch.SettingsFrom = "probed"
			}
		}
	}
	if e.Python == nil {
		e.Absent = append(e.Absent, "python")
	} else if e.Torch == nil {
		e.Absent = append(e.Absent, "torch")
	}
	if prefix := lookupEnv(env, "CONDA_PREFIX"); prefix != "" {
		if out, err := runTool(ctx, "", env, "conda", "list", "--export", "-p", prefix); err == nil {
			st.Packages, e.PackageManager = out, "conda"
		}
	}
	if st.Packages == nil && e.Python != nil {
		if out, err := runTool(ctx, "", env, python, "-m", "pip", "freeze", "--all"); err == nil {
			st.Packages, e.PackageManager = out, "pip"
		} else {
			e.Absent = append(e.Absent, "pip")
		}
	}
	for _, line := range strings.Split(string(st.Packages), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			e.PackageCount++
		}
	}
	if out, err := runTool(ctx, "", env, "nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"); err == nil {
		e.GPUs = parseNvidiaSMI(out)
	} else {
		e.Absent = append(e.Absent, "nvidia-smi")
	}
	return st
}

func lookupEnv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// parseNvidiaSMI reads "name, driver, MiB" lines.
func parseNvidiaSMI(out []byte) []GPU {
	gpus := []GPU{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 3 {
			continue
		}
		mib, _ := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		gpus = append(gpus, GPU{Name: strings.TrimSpace(f[0]), Driver: strings.TrimSpace(f[1]), MemoryBytes: mib << 20})
	}
	return gpus
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// DeterminismVars are recorded whenever set: the variables that change
// what a run computes.
var DeterminismVars = []string{
	"PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
	"CUDNN_DETERMINISTIC", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
	"NUMEXPR_NUM_THREADS", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "NVIDIA_TF32_OVERRIDE",
	"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "XLA_FLAGS", "WORLD_SIZE", "RANK", "LOCAL_RANK",
	"CAS_SEED", "CAS_RANK", "CAS_RUN_DIR",
}

// secretWords mark a variable name as a secret: it is never recorded.
var secretWords = []string{"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL", "AUTH", "PRIVATE", "SESSION", "COOKIE", "SIGNATURE"}

// IsSecretName reports whether a variable name looks like it holds a secret.
func IsSecretName(name string) bool {
	up := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// CaptureVars picks the variables to record from env: the determinism
// ones and those the user named, never a secret, and with the password of
// any URL in a value removed (DATABASE_URL=postgres://u:PASSWORD@host).
func CaptureVars(env []string, extra []string) map[string]string {
	want := map[string]bool{}
	for _, n := range DeterminismVars {
		want[n] = true
	}
	for _, n := range extra {
		want[n] = true
	}
	out := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && want[k] && !IsSecretName(k) {
			out[k] = RedactURLs(v)
		}
	}
	return out
}
