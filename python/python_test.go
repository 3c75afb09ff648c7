// Package python_test runs the Python companion's own tests (python/tests,
// unittest) from `go test ./...`, so `make test` runs them, against a cas
// built from this tree.
package python_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cas-ml/cas/buildinfo"
)

// interpreter is a python3 that imports torch and numpy when there is
// one (Debian's /usr/bin/python3 with python3-torch, which make deps
// installs), else the first python3 on PATH, whose torch tests skip. In CI
// torch is required, so they fail rather than skip.
func interpreter(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import torch, numpy").Run() == nil {
			return py
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but no python3 imports torch and numpy: run make deps")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3")
	}
	return py
}

func buildCas(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cas")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/cas-ml/cas").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func pythonEnv(t *testing.T, bin string) []string {
	home := t.TempDir()
	env := []string{"CAS_BIN=" + bin, "HOME=" + home, "PYTHONDONTWRITEBYTECODE=1", "PIP_NO_INDEX=1",
		"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH" || k == "HOME" || strings.HasPrefix(k, "CAS_") || k == "PYTHONPATH":
		default:
			env = append(env, kv)
		}
	}
	return env
}

func TestPythonUnittest(t *testing.T) {
	py := interpreter(t)
	bin := buildCas(t)
	cmd := exec.Command(py, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	cmd.Env = pythonEnv(t, bin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("%s -m unittest:\n%s", py, out.String())
	if err != nil {
		t.Fatalf("python unittest failed: %v", err)
	}
	if !regexp.MustCompile(`(?m)^OK`).Match(out.Bytes()) {
		t.Fatal("no OK from unittest")
	}
}

// The package installs offline with pip and is the version of this tree.
func TestPipInstallOffline(t *testing.T) {
	py := interpreter(t)
	if exec.Command(py, "-m", "pip", "--version").Run() != nil {
		t.Skip(py + " has no pip")
	}
	target := t.TempDir()
	cmd := exec.Command(py, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--target", target, ".")
	cmd.Env = append(pythonEnv(t, "cas"), "PIP_DISABLE_PIP_VERSION_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pip install ./python: %v\n%s", err, out)
	}
	cmd = exec.Command(py, "-c", "import cas; print(cas.__version__, cas.__file__)")
	cmd.Dir = target
	cmd.Env = pythonEnv(t, "cas")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	version, file, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != buildinfo.Release || !strings.HasPrefix(file, target) {
		t.Errorf("installed cas %s from %s, want %s from %s", version, file, buildinfo.Release, target)
	}
	pyproject, err := os.ReadFile("pyproject.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pyproject, []byte("\nversion = \""+buildinfo.Release+"\"\n")) {
		t.Errorf("pyproject.toml does not say version = %q", buildinfo.Release)
	}
}
