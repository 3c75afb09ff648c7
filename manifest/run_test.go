package manifest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// needTools skips without git or python3, except in CI where they must be.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing: make deps installs it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

const trainPy = `import os, json, random
seed = int(os.environ["CAS_SEED"])
random.seed(seed)
os.makedirs("out", exist_ok=True)
open("out/model.bin", "w").write(repr(random.random()))
json.dump({"acc": 0.9 + seed / 1000, "loss": {"val": 0.25}}, open("out/metrics.json", "w"))
print("seed", seed, "hashseed", os.environ["PYTHONHASHSEED"], "token", os.environ.get("MY_API_TOKEN"))
`

// project makes a git repository with a committed script and data, then
// dirties the script and adds an untracked file.
func project(t *testing.T) (dir string, repo *cas.Repo) {
	t.Helper()
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "data", "train.csv"), "x,y\n1,2\n")
	write(t, filepath.Join(dir, "train.py"), trainPy)
	sh(t, dir, "git", "init", "-q", "-b", "main")
	sh(t, dir, "git", "add", ".")
	sh(t, dir, "git", "commit", "-qm", "init")
	write(t, filepath.Join(dir, "train.py"), trainPy+"# tuned\n")
	write(t, filepath.Join(dir, "notes.txt"), "untracked\n")
	store := filepath.Join(dir, ".cas")
	p, _ := cas.NewChunkParams(64 << 10)
	if err := cas.Init(store, p, time.Now()); err != nil {
		t.Fatal(err)
	}
	repo, err := cas.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return dir, repo
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runSeed(t *testing.T, dir string, repo *cas.Repo, name string, seed int64, environ []string) *Result {
	t.Helper()
	var stdout bytes.Buffer
	res, err := Run(context.Background(), repo, Options{
		Name: name, Seed: &seed, WorkDir: dir, Command: []string{"python3", "train.py"},
		Inputs: []string{"data=" + filepath.Join(dir, "data")}, Outputs: []string{filepath.Join(dir, "out")},
		Metrics: filepath.Join(dir, "out", "metrics.json"), EnvVars: []string{"MY_API_TOKEN"},
		Environ: environ, Stdout: &stdout, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(stdout.String(), "seed "+res.Manifest.Variables["CAS_SEED"]) {
		t.Errorf("the command's output was not streamed: %q", stdout.String())
	}
	return res
}

func TestRunAcceptance(t *testing.T) {
	t.Parallel()
	needTools(t, "git", "python3")
	ctx := context.Background()
	dir, repo := project(t)
	token := "tok-" + randHex(t)
	environ := append(os.Environ(), "MY_API_TOKEN="+token)
	res := runSeed(t, dir, repo, "s7", 7, environ)
	m := res.Manifest

	// The manifest stored under its digest is the one returned.
	stored, err := Load(ctx, repo, res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if b1, _ := stored.Encode(); !bytes.Equal(b1, mustEncode(t, m)) || digest.Of(b1) != res.Digest {
		t.Errorf("stored manifest differs from the returned one")
	}
	if ref, err := repo.GetRef(ctx, "runs/s7"); err != nil || ref.Target != res.Digest || ref.Type != "manifest" {
		t.Errorf("ref runs/s7 = %+v, %v; want %s, type manifest", ref, err, res.Digest)
	}

	// Code: commit, branch, dirty, untracked, and a patch that re-applies.
	if got, want := m.Code.Commit, sh(t, dir, "git", "rev-parse", "HEAD"); got != want {
		t.Errorf("commit = %q, want %q", got, want)
	}
	if !m.Code.Git || !m.Code.Dirty || m.Code.Branch != "main" {
		t.Errorf("code = %+v, want git, dirty, branch main", m.Code)
	}
	if strings.Join(m.Code.Untracked, ",") != "notes.txt" {
		t.Errorf("untracked = %v, want [notes.txt] (outputs and the store are not code)", m.Code.Untracked)
	}
	patch, err := LoadObject(ctx, repo, m.Code.Patch, 1<<20)
	if err != nil || patch == nil {
		t.Fatalf("patch object: %v", err)
	}
	clone := t.TempDir()
	sh(t, clone, "git", "clone", "-q", dir, ".")
	write(t, filepath.Join(clone, "p.diff"), string(patch))
	sh(t, clone, "git", "apply", "p.diff")
	if got, _ := os.ReadFile(filepath.Join(clone, "train.py")); string(got) != trainPy+"# tuned\n" {
		t.Errorf("re-applied train.py = %q", got)
	}

	// Environment, seeds and the variables cas set.
	if m.Environment.Python == nil || !strings.HasPrefix(m.Environment.Python.Version, "3.") {
		t.Errorf("python = %+v, want a 3.x version", m.Environment.Python)
	}
	if m.Environment.PackageManager == "pip" {
		if pk, err := LoadObject(ctx, repo, m.Environment.Packages, 64<<20); err != nil || m.Environment.PackageCount == 0 || len(pk) == 0 {
			t.Errorf("package list: %d packages, %d bytes, %v", m.Environment.PackageCount, len(pk), err)
		}
	}
	if m.Seeds.Seed == nil || *m.Seeds.Seed != 7 {
		t.Errorf("seed = %v, want 7", m.Seeds.Seed)
	}
	for k, want := range map[string]string{"PYTHONHASHSEED": "7", "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "CAS_SEED": "7", "CAS_RANK": "0"} {
		if got := m.Variables[k]; got != want {
			t.Errorf("variable %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := m.Variables["MY_API_TOKEN"]; ok {
		t.Error("a secret-looking variable was recorded although listed with --env")
	}

	// Inputs and outputs are what cas hash says.
	for _, c := range []struct {
		a    []Artifact
		path string
	}{{m.Inputs, "data"}, {m.Outputs, "out"}} {
		h, err := cas.Hash(ctx, nil, []string{filepath.Join(dir, c.path)}, cas.PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.a) != 1 || c.a[0].Name != c.path || c.a[0].Digest != h.Digest {
			t.Errorf("%s artifact = %+v, want digest %s", c.path, c.a, h.Digest)
		}
	}
	if m.Metrics["acc"] != 0.907 || m.Metrics["loss.val"] != 0.25 || m.Status != "ok" {
		t.Errorf("metrics = %v, status %q", m.Metrics, m.Status)
	}

	// A second run with another seed differs in exactly seed, outputs, metrics.
	res8 := runSeed(t, dir, repo, "s8", 8, environ)
	var sections []string
	for _, d := range Diff(m, res8.Manifest, nil, nil) {
		sections = append(sections, d.Section+"/"+d.Key)
	}
	if got, want := strings.Join(sections, " "), "seeds/seed outputs/out metrics/acc"; got != want {
		t.Errorf("diff of seeds 7 and 8: got %q, want %q", got, want)
	}

	// The secret is in no stored object, decompressed, nor in any ref.
	assertStoredNowhere(t, repo, token)
	stdout, _ := LoadObject(ctx, repo, m.Logs.Stdout, 1<<20)
	if !strings.Contains(string(stdout), "token [REDACTED]") {
		t.Errorf("stdout log = %q, want the token redacted", stdout)
	}
}

// assertStoredNowhere fails if any of secrets is in a blob of the store,
// decompressed, or in any object of its backend (refs, segments, packs).
func assertStoredNowhere(t *testing.T, repo *cas.Repo, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	blobs := 0
	err := repo.ForEachBlob(ctx, func(id digest.Digest, raw []byte) error {
		blobs++
		for _, s := range secrets {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("blob %s holds the secret %q", id.Short(), s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if blobs == 0 {
		t.Fatal("the store holds no blob: nothing was scanned")
	}
	err = repo.Backend.List(ctx, "", func(oi remote.ObjectInfo) error {
		b, err := remote.ReadAll(ctx, repo.Backend, oi.Key)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("object %s holds the secret %q", oi.Key, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRunRedactsCredentials(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	ctx := context.Background()
	dir, repo := project(t)
	apiKey, pwInArg, pwInEnv := "ak-"+randHex(t), "pa-"+randHex(t), "pe-"+randHex(t)
	const script = `for a in "$@"; do echo "arg $a"; done; echo "pin $PIN_PASSWORD"; ` +
		`echo "PIN2_PASSWORD=$PIN2_PASSWORD"; echo "db $DATABASE_URL"`
	command := []string{"sh", "-c", script, "sh", "--api-key=" + apiKey, "--token", "Q7w", "-password=X",
		"postgres://user:" + pwInArg + "@host/db"}
	environ := append(os.Environ(), "PIN_PASSWORD=k9%Qz", "PIN2_PASSWORD=Zq",
		"DATABASE_URL=postgres://user:"+pwInEnv+"@db/x")
	config := filepath.Join(dir, "cfg.yaml")
	write(t, config, "api_key: "+apiKey+"\ndb: postgres://user:"+pwInEnv+"@db/x\n")
	res, err := Run(ctx, repo, Options{Name: "secrets", WorkDir: dir, Command: command, Environ: environ,
		EnvVars: []string{"DATABASE_URL"}, Config: config, Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	wantCommand := []string{"sh", "-c", script, "sh", "--api-key=[REDACTED]", "--token", "[REDACTED]",
		"-password=[REDACTED]", "postgres://user:[REDACTED]@host/db"}
	if !slices.Equal(m.Command, wantCommand) {
		t.Errorf("command = %q, want %q", m.Command, wantCommand)
	}
	if got, want := m.Variables["DATABASE_URL"], "postgres://user:[REDACTED]@db/x"; got != want {
		t.Errorf("variable DATABASE_URL = %q, want %q", got, want)
	}
	stdout, err := LoadObject(ctx, repo, m.Logs.Stdout, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	wantLog := "arg --api-key=[REDACTED]\narg --token\narg [REDACTED]\narg -password=[REDACTED]\n" +
		"arg postgres://user:[REDACTED]@host/db\npin [REDACTED]\nPIN2_PASSWORD=[REDACTED]\n" +
		"db postgres://user:[REDACTED]@db/x\n"
	if string(stdout) != wantLog {
		t.Errorf("stdout log:\ngot  %q\nwant %q", stdout, wantLog)
	}
	cfg, err := LoadObject(ctx, repo, m.Config, 1<<20)
	if want := "api_key: [REDACTED]\ndb: postgres://user:[REDACTED]@db/x\n"; err != nil || string(cfg) != want {
		t.Errorf("config object = %q, %v; want %q", cfg, err, want)
	}
	// Every object is recorded with the size of its redacted bytes.
	checks, err := Verify(ctx, repo, m, res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("verify: %s: %s", c.What, c.Detail)
		}
	}
	// The values of one or two characters ("X", "Zq") occur by chance
	// anywhere; the log and command above show where they were removed.
	assertStoredNowhere(t, repo, apiKey, pwInArg, pwInEnv, "Q7w", "k9%Qz")
}

func TestRunFailingCommandStillRecorded(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	dir, repo := project(t)
	for _, c := range []struct {
		cmd    []string
		status string
		code   int
	}{
		{[]string{"sh", "-c", "echo boom >&2; exit 3"}, "failed", 3},
		{[]string{"sh", "-c", "kill -TERM $$"}, "interrupted", 128 + 15},
		{[]string{"no-such-command-xyz"}, "failed", 127},
	} {
		res, err := Run(context.Background(), repo, Options{WorkDir: dir, Command: c.cmd, Environ: os.Environ(),
			Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			t.Fatalf("%v: %v", c.cmd, err)
		}
		if m := res.Manifest; m.Status != c.status || m.ExitCode != c.code {
			t.Errorf("%v: status %s exit %d, want %s %d", c.cmd, m.Status, m.ExitCode, c.status, c.code)
		}
	}
}

func TestRunKeepsUserVariables(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	dir, repo := project(t)
	seed := int64(3)
	res, err := Run(context.Background(), repo, Options{WorkDir: dir, Seed: &seed, Command: []string{"true"},
		Environ: append(os.Environ(), "PYTHONHASHSEED=99", "CUBLAS_WORKSPACE_CONFIG=:16:8"), Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Manifest.Variables; v["PYTHONHASHSEED"] != "99" || v["CUBLAS_WORKSPACE_CONFIG"] != ":16:8" || v["CAS_SEED"] != "3" {
		t.Errorf("variables = %v: the user's values must win and be recorded", v)
	}
}

func TestRecordOutsideGit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	p, _ := cas.NewChunkParams(64 << 10)
	if err := cas.Init(filepath.Join(dir, ".cas"), p, time.Now()); err != nil {
		t.Fatal(err)
	}
	repo, err := cas.Open(ctx, filepath.Join(dir, ".cas"))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	write(t, filepath.Join(dir, "m.json"), `{"acc": 1, "name": "x", "bad": 1e999}`)
	code := 0
	res, err := Record(ctx, repo, Options{WorkDir: dir, Command: []string{"python3", "old.py"}, Metrics: filepath.Join(dir, "m.json"),
		ExitCode: &code, Environ: []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m.Code.Git || m.Code.Reason == "" || m.Status != "ok" || m.Kind != "record" || len(m.Metrics) != 1 {
		t.Errorf("record outside git: code %+v status %q kind %q metrics %v", m.Code, m.Status, m.Kind, m.Metrics)
	}
}

func mustEncode(t *testing.T, m *Manifest) []byte {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randHex(t *testing.T) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func TestRunRecordsCheckpointRNG(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	dir, repo := project(t)
	src, err := os.ReadFile(filepath.Join("..", "testdata", "ckpt", "seed_layout_cpu.pt"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ckpt")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "epoch3.pt"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(out, "notes.txt"), "not a checkpoint")
	res, err := Run(context.Background(), repo, Options{WorkDir: dir, Command: []string{"true"}, Outputs: []string{out},
		Environ: os.Environ(), Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	cps := res.Manifest.Outputs[0].Checkpoints
	if len(cps) != 1 || cps[0].Path != "epoch3.pt" || cps[0].Digest != digest.Of(src) || cps[0].Tensors == 0 {
		t.Fatalf("checkpoints = %+v, want epoch3.pt with its digest and tensors", cps)
	}
	kinds := map[string]bool{}
	for _, s := range cps[0].RNG {
		kinds[s.Kind] = true
		if _, err := digest.Parse(s.Fingerprint); err != nil {
			t.Errorf("fingerprint %q: %v", s.Fingerprint, err)
		}
	}
	for _, k := range []string{"torch_cpu", "numpy_mt19937", "python_random"} {
		if !kinds[k] {
			t.Errorf("RNG state %s not recorded; got %v", k, kinds)
		}
	}
}

func mustDigest(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestVerifyRecomputesCheckpointRNG(t *testing.T) {
	t.Parallel()
	needTools(t, "git")
	ctx := context.Background()
	dir, repo := project(t)
	src, err := os.ReadFile(filepath.Join("..", "testdata", "ckpt", "seed_layout_cpu.pt"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ckpt")
	_ = os.MkdirAll(out, 0o755)
	write(t, filepath.Join(out, "last.pt"), string(src))
	res, err := Run(ctx, repo, Options{WorkDir: dir, Command: []string{"true"}, Outputs: []string{out},
		Environ: os.Environ(), Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	checks, err := Verify(ctx, repo, res.Manifest, res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range checks {
		if !c.OK {
			t.Errorf("check failed: %+v", c)
		}
		if strings.HasPrefix(c.What, "checkpoint ckpt/last.pt") && c.Detail == "RNG fingerprints recomputed and equal" {
			found = true
		}
	}
	if !found {
		t.Errorf("no checkpoint check among %+v", checks)
	}
	// A manifest whose recorded fingerprint is not what the bytes hold fails.
	res.Manifest.Outputs[0].Checkpoints[0].RNG[0].Fingerprint = digest.Of([]byte("other")).String()
	checks, _ = Verify(ctx, repo, res.Manifest, res.Digest)
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("tampered manifest: %d checks failed, want 2 (canonical form, checkpoint): %+v", failed, checks)
	}
}
