package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// ReproduceOptions describe an independent re-run of a recorded run.
type ReproduceOptions struct {
	Ref string
	// Dir is where the code is checked out and the run happens; it must
	// not exist. Default: .cas/repro/NAME under the store.
	Dir string
	// Repo is a git clone holding the recorded commit (default: the
	// repository of the current directory, else the recorded root).
	Repo      string
	Tolerance float64
	// Exact makes any difference (an output, a metric) a FAIL.
	Exact   bool
	Metrics []string // the metrics to compare; default: all recorded
	// Curve compares the whole metrics history, step by step, within
	// Tolerance, not only the final values.
	Curve   bool
	Command []string // default: the recorded command
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	Warn    func(string)
}

// MetricCheck compares one metric with the reference.
type MetricCheck struct {
	Name      string   `json:"name"`
	Reference float64  `json:"reference"`
	New       *float64 `json:"new"`
	// RelDiff is |new - reference| / |reference| (the absolute difference
	// when the reference is 0).
	RelDiff float64 `json:"relative_difference"`
	Within  bool    `json:"within_tolerance"`
}

// Reproduction is the verdict of a re-run.
type Reproduction struct {
	Original    string        `json:"original"`
	Manifest    string        `json:"manifest"`
	Ref         string        `json:"ref"`
	Dir         string        `json:"dir"`
	Tolerance   float64       `json:"tolerance"`
	Environment []Difference  `json:"environment_differences"`
	ExitCode    int           `json:"exit_code"`
	Metrics     []MetricCheck `json:"metrics"`
	// Curve compares the metrics histories step by step (with Curve).
	Curve *CurveCheck `json:"curve,omitempty"`
	// Outputs compares each recorded output with the reproduction's.
	Outputs []OutputCheck `json:"outputs"`
	// Verdict is EXACT, PASS within tolerance, or FAIL (see the Verdict
	// constants); Pass is false only for FAIL.
	Verdict string `json:"verdict"`
	Pass    bool   `json:"pass"`
	Reason  string `json:"reason,omitempty"`
	// Diagnosis names the first checkpoint and tensor that diverge and
	// what the divergence suggests.
	Diagnosis string `json:"diagnosis,omitempty"`
	// historyDiffers: the recorded run has a metrics history and the
	// reproduction's is absent or other bytes; never EXACT then.
	historyDiffers bool
}

// Reproduce restores a recorded run's inputs, checks out its commit with
// its uncommitted diff applied, re-runs its command with its seeds and
// variables, records the reproduction as a manifest pointing at the
// original, and compares each metric by relative difference.
func Reproduce(ctx context.Context, r *cas.Repo, opts ReproduceOptions) (*Reproduction, error) {
	orig, od, err := Resolve(ctx, r, opts.Ref)
	if err != nil {
		return nil, err
	}
	// Checked before anything runs: the manifest records the tolerance.
	if err := CheckTolerance(opts.Tolerance); err != nil {
		return nil, err
	}
	// Names read from a stored manifest become paths below: refuse any
	// that could point outside the reproduction's directory.
	if err := checkPathNames(orig); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Ref, err)
	}
	warn := func(s string) {
		if opts.Warn != nil {
			opts.Warn(s)
		}
	}
	name := orig.Name + "-repro-" + NewRunName(r.Now())
	if opts.Dir == "" {
		opts.Dir = filepath.Join(r.Dir, cas.ReproDir, name)
	}
	if _, err := os.Lstat(opts.Dir); err == nil {
		return nil, &ExistsError{Dir: opts.Dir}
	}
	// An input recorded outside the run's directory is restored under
	// inputs/NAME and the command's mention of it rewritten; with none,
	// the reproduction is refused before anything is done: the command
	// would read whatever now lies at the old path.
	command := orig.Command
	if len(opts.Command) > 0 {
		command = opts.Command
	}
	command = slices.Clone(command)
	for _, in := range orig.Inputs {
		if in.Path != "" && outside(orig.WorkDir, in.Path) && len(opts.Command) == 0 && rewriteArgs(slices.Clone(command), in.Path, "x") == 0 {
			return nil, &OutsideInputError{Name: in.Name, Path: in.Path, Digest: in.Digest}
		}
	}
	// 1. The code: a worktree at the recorded commit, with the diff applied.
	runDir, err := checkout(ctx, r, orig, opts)
	if err != nil {
		return nil, err
	}
	// 2. The inputs, where the recorded run had them.
	inputs, err := restoreInputs(ctx, r, orig, runDir, command, warn)
	if err != nil {
		return nil, err
	}
	// 3. How this machine differs, and the recorded variables.
	env := reproEnviron(orig, opts.Environ)
	if len(opts.Command) == 0 && slices.ContainsFunc(command, func(a string) bool { return strings.Contains(a, Redacted) }) {
		warn("the recorded command had credentials removed; it runs with " + Redacted + " in their place (give the command after -- to pass them)")
	}
	outputs, compared := reproOutputs(orig, runDir, r.Dir)
	metricsFile := ""
	if orig.MetricsFile != "" {
		metricsFile = filepath.Join(runDir, orig.MetricsFile)
	}
	// 4. Run it, recorded as a reproduction of the original.
	res, err := run(ctx, r, Options{Name: name, Seed: orig.Seeds.Seed, Rank: orig.Seeds.Rank, Command: command,
		Inputs: inputs, Outputs: outputs, Metrics: metricsFile, Environ: env, WorkDir: runDir,
		Stdout: opts.Stdout, Stderr: opts.Stderr, Warn: opts.Warn}, func(m *Manifest) {
		m.Kind, m.ReproductionOf = "reproduction", od
		// What the verdict below is judged by, so that a report gives the
		// same verdict later (JudgeRecorded).
		m.Schema, m.Criteria = SchemaV3, opts.criteria()
	})
	if err != nil {
		return nil, err
	}
	// 5. The verdict.
	rep := judgeReproduction(ctx, r, orig, od, res, runDir, compared, opts)
	if len(rep.Environment) > 0 {
		warn(fmt.Sprintf("this machine differs from the recorded one in %d ways (see the report)", len(rep.Environment)))
	}
	return rep, nil
}

// ErrBadTolerance refuses a tolerance that judges nothing: negative, NaN
// (which compares false with every difference, so tightens nothing) or
// infinite; a manifest (Criteria) could not record the last two either.
var ErrBadTolerance = errors.New("tolerance must be a number, not negative and not infinite")

// CheckTolerance returns ErrBadTolerance for a tolerance that judges
// nothing, as Reproduce and a report take it.
func CheckTolerance(t float64) error {
	if !(t >= 0) || math.IsInf(t, 1) {
		return ErrBadTolerance
	}
	return nil
}

// criteria are the options that decide the verdict, as a reproduction's
// manifest records them.
func (o ReproduceOptions) criteria() *Criteria {
	return &Criteria{Tolerance: o.Tolerance, Exact: o.Exact, Metrics: slices.Clone(o.Metrics), Curve: o.Curve}
}

// restoreInputs restores each input of orig where the recorded run had it
// under runDir, and returns them as NAME=PATH for the run. An input that
// was outside the run's directory goes under inputs/NAME instead, and
// command's mention of it is rewritten.
func restoreInputs(ctx context.Context, r *cas.Repo, orig *Manifest, runDir string, command []string, warn func(string)) ([]string, error) {
	for _, in := range orig.Inputs {
		if in.Path != "" && outside(orig.WorkDir, in.Path) {
			dest := inputPath(orig, runDir, in)
			rewriteArgs(command, in.Path, dest)
			warn(fmt.Sprintf("input %s was at %s, outside the run's directory: restored at %s, and the command's mention of it rewritten", in.Name, in.Path, dest))
		}
	}
	var inputs []string
	for _, in := range orig.Inputs {
		dest := inputPath(orig, runDir, in)
		obj, err := r.Resolve(ctx, in.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		if _, err := r.Restore(ctx, obj, dest, cas.RestoreOptions{Force: true}); err != nil {
			return nil, fmt.Errorf("restore input %s: %w", in.Name, err)
		}
		inputs = append(inputs, in.Name+"="+dest)
	}
	return inputs, nil
}

// reproEnviron is environ with the recorded run's variables added, but for
// CAS_RUN_DIR and a value whose password was removed when this machine
// sets the variable: that one is taken from this machine.
func reproEnviron(orig *Manifest, environ []string) []string {
	env := append([]string(nil), environ...)
	for k, v := range orig.Variables {
		if k == "CAS_RUN_DIR" || strings.Contains(v, Redacted) && lookupEnv(env, k) != "" {
			continue
		}
		env = append(env, k+"="+v)
	}
	return env
}

// reproOutputs lists where under runDir the reproduction writes the
// outputs the recorded command wrote, and the recorded outputs to compare
// them with: every output but the original run's own directory
// (CAS_RUN_DIR, which cas run stores as an output of its own). That
// directory is the one the manifest records, not one derived from the
// store reading it, which may be another store or none (a remote read
// with --from). storeDir, the reading store's .cas directory, stands in
// for a manifest that does not record it.
func reproOutputs(orig *Manifest, runDir, storeDir string) (outputs []string, compared []Artifact) {
	own := orig.Variables["CAS_RUN_DIR"]
	if own == "" {
		own = storeDir
	}
	for _, o := range orig.Outputs {
		if o.Path == "" || own != "" && (o.Path == own || strings.HasPrefix(o.Path, own+string(filepath.Separator))) {
			continue
		}
		outputs = append(outputs, filepath.Join(runDir, relTo(orig.WorkDir, o.Path)))
		compared = append(compared, o)
	}
	return outputs, compared
}

// judgeReproduction compares the reproduction res, run in runDir, with
// the original run orig (digest od): its environment, exit status,
// metrics and the compared outputs.
func judgeReproduction(ctx context.Context, r *cas.Repo, orig *Manifest, od digest.Digest, res *Result, runDir string, compared []Artifact, opts ReproduceOptions) *Reproduction {
	recPkgs, _ := LoadObject(ctx, r, orig.Environment.Packages, 64<<20)
	newPkgs, _ := LoadObject(ctx, r, res.Manifest.Environment.Packages, 64<<20)
	rep := &Reproduction{Original: od.String(), Manifest: res.Digest.String(), Ref: res.Ref, Dir: runDir,
		Tolerance: opts.Tolerance, Environment: EnvDiff(orig, res.Manifest, recPkgs, newPkgs), ExitCode: res.Manifest.ExitCode}
	if rep.Environment == nil {
		rep.Environment = []Difference{}
	}
	rep.Metrics, rep.Pass, rep.Reason = CompareMetrics(orig.Metrics, res.Manifest.Metrics, opts.Metrics, opts.Tolerance)
	if h := orig.MetricsHistory; h != nil {
		got := res.Manifest.MetricsHistory
		rep.historyDiffers = got == nil || got.Digest != h.Digest
	}
	if opts.Curve {
		var reason string
		rep.Curve, reason = compareHistories(ctx, r, orig, res.Manifest, opts)
		if reason != "" {
			rep.Pass, rep.Reason = false, reason
		}
	}
	if res.Manifest.ExitCode != 0 {
		rep.Pass, rep.Reason = false, fmt.Sprintf("the command exited with status %d", res.Manifest.ExitCode)
	}
	rep.Outputs = compareOutputs(ctx, r, compared, res.Manifest.Outputs)
	rep.verdict(opts.Exact)
	return rep
}

// compareHistories compares the metrics history of the reproduction
// got with the recorded one, and says why it fails ("" when it passes).
func compareHistories(ctx context.Context, r *cas.Repo, orig, got *Manifest, opts ReproduceOptions) (*CurveCheck, string) {
	if orig.MetricsHistory == nil {
		return nil, "--curve: the recorded run has no metrics history"
	}
	for _, n := range opts.Metrics {
		if !slices.Contains(orig.MetricsHistory.Names, n) {
			return nil, fmt.Sprintf("--curve: the recorded metrics history has no metric %q", n)
		}
	}
	want, err := LoadHistory(ctx, r, orig)
	if err != nil {
		return nil, "--curve: the recorded " + err.Error()
	}
	have, err := LoadHistory(ctx, r, got)
	if err != nil {
		return nil, "--curve: the reproduction's " + err.Error()
	}
	c := CompareCurves(want, have, opts.Metrics, opts.Tolerance)
	switch {
	case got.MetricsHistory == nil:
		return c, "--curve: the reproduction wrote no metrics history"
	case c.First != nil:
		return c, "the curves diverge: " + c.First.String()
	}
	return c, ""
}

// CompareMetrics checks each metric of got against want by relative
// difference. names limits the check; by default every recorded metric
// is checked. A metric missing from got fails.
func CompareMetrics(want, got map[string]float64, names []string, tol float64) ([]MetricCheck, bool, string) {
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(want))
	}
	checks := []MetricCheck{}
	pass, reason := true, ""
	if len(names) == 0 {
		return checks, false, "the recorded run has no metrics to compare"
	}
	for _, n := range names {
		ref, ok := want[n]
		if !ok {
			return checks, false, fmt.Sprintf("the recorded run has no metric %q", n)
		}
		c := MetricCheck{Name: n, Reference: ref}
		if v, ok := got[n]; ok {
			c.New = &v
			c.RelDiff = relDiff(v, ref)
			c.Within = c.RelDiff <= tol
		}
		if !c.Within {
			pass = false
			if reason == "" {
				reason = fmt.Sprintf("metric %s is outside the tolerance", n)
				if c.New == nil {
					reason = fmt.Sprintf("metric %s is missing", n)
				}
			}
		}
		checks = append(checks, c)
	}
	return checks, pass, reason
}

// rewriteArgs replaces, in place, every mention of path in args (the
// whole argument, a prefix path/…, or after "=") by dest, and counts them.
func rewriteArgs(args []string, path, dest string) int {
	n := 0
	path = filepath.Clean(path)
	for i, a := range args {
		prefix, val := "", a
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			prefix, val = k+"=", v
		}
		switch {
		case filepath.Clean(val) == path:
			args[i] = prefix + dest
		case strings.HasPrefix(val, path+"/"):
			args[i] = prefix + dest + strings.TrimPrefix(val, path)
		default:
			continue
		}
		n++
	}
	return n
}

// checkPathNames checks the names of a stored manifest that a
// reproduction turns into paths: the run's name (a directory under
// .cas/repro, and a ref) and each input's (inputs/NAME).
func checkPathNames(m *Manifest) error {
	if !cas.ValidRefName(RefPrefix + m.Name) {
		return fmt.Errorf("%w: run name %q", ErrNotManifest, m.Name)
	}
	for _, in := range m.Inputs {
		if !cas.ValidName(in.Name) {
			return fmt.Errorf("%w: input name %q", ErrNotManifest, in.Name)
		}
	}
	return nil
}

// inputPath is where a recorded input goes in the reproduction: at the
// same place relative to the work directory, or under inputs/NAME.
func inputPath(m *Manifest, runDir string, in Artifact) string {
	if in.Path != "" && !outside(m.WorkDir, in.Path) {
		return filepath.Join(runDir, relTo(m.WorkDir, in.Path))
	}
	return filepath.Join(runDir, "inputs", in.Name)
}

// checkout makes the directory the reproduction runs in and returns the
// work directory inside it: a git worktree at the recorded commit with
// the recorded diff applied, or an empty directory when the run was not
// in git.
func checkout(ctx context.Context, r *cas.Repo, m *Manifest, opts ReproduceOptions) (string, error) {
	if !m.Code.Git || m.Code.Commit == "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return "", err
		}
		if opts.Warn != nil {
			opts.Warn("the recorded run was not in a git repository: running in an empty directory")
		}
		return opts.Dir, nil
	}
	clone := opts.Repo
	if clone == "" {
		if out, err := runTool(ctx, "", nil, "git", "rev-parse", "--show-toplevel"); err == nil {
			clone = strings.TrimSpace(string(out))
		} else {
			clone = m.Code.Root
		}
	}
	if _, err := runTool(ctx, clone, nil, "git", "cat-file", "-e", m.Code.Commit+"^{commit}"); err != nil {
		return "", &MissingCommitError{Commit: m.Code.Commit, Repo: clone}
	}
	if _, err := runTool(ctx, clone, nil, "git", "worktree", "add", "--detach", opts.Dir, m.Code.Commit); err != nil {
		return "", fmt.Errorf("git worktree add: %w", err)
	}
	if m.Code.Patch != nil {
		patch, err := r.ReadObject(ctx, m.Code.Patch.Digest, 1<<30)
		if err != nil {
			return "", fmt.Errorf("the recorded diff: %w", err)
		}
		pf := filepath.Join(opts.Dir, ".cas-recorded.diff")
		if err := os.WriteFile(pf, patch, 0o644); err != nil {
			return "", err
		}
		_, err = runTool(ctx, opts.Dir, nil, "git", "apply", "--whitespace=nowarn", pf)
		os.Remove(pf)
		if err != nil {
			return "", fmt.Errorf("git apply of the recorded diff: %w", err)
		}
	}
	runDir := opts.Dir
	if rel, err := filepath.Rel(m.Code.Root, m.WorkDir); err == nil && !strings.HasPrefix(rel, "..") {
		runDir = filepath.Join(opts.Dir, rel)
	}
	return runDir, os.MkdirAll(runDir, 0o755)
}
