package manifest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Difference is one way two manifests differ.
type Difference struct {
	// Section is inputs, outputs, code, packages, environment, variables,
	// seeds, command, status or metrics.
	Section string `json:"section"`
	Key     string `json:"key"`
	A       string `json:"a"`
	B       string `json:"b"`
	// Delta and Relative are set for metrics present in both.
	Delta    *float64 `json:"delta,omitempty"`
	Relative *float64 `json:"relative,omitempty"`
}

// Diff lists what differs between a and b, section by section. Package
// lists are compared by content, so pkgsA and pkgsB are the package list
// objects' bytes (nil when absent).
func Diff(a, b *Manifest, pkgsA, pkgsB []byte) []Difference {
	var out []Difference
	add := func(section, key, x, y string) {
		if x != y {
			out = append(out, Difference{Section: section, Key: key, A: x, B: y})
		}
	}
	artifacts := func(section string, x, y []Artifact) {
		mx, my := map[string]string{}, map[string]string{}
		for _, a := range x {
			mx[a.Name] = a.Digest.String()
		}
		for _, a := range y {
			my[a.Name] = a.Digest.String()
		}
		for _, k := range unionKeys(mx, my) {
			add(section, k, mx[k], my[k])
		}
	}
	add("command", "command", strings.Join(a.Command, " "), strings.Join(b.Command, " "))
	add("status", "status", a.Status, b.Status)
	add("status", "exit_code", strconv.Itoa(a.ExitCode), strconv.Itoa(b.ExitCode))
	artifacts("inputs", a.Inputs, b.Inputs)
	add("code", "commit", a.Code.Commit, b.Code.Commit)
	// A reproduction runs in a worktree detached at the recorded commit: no
	// branch there is not a difference of code.
	detached := (a.Kind == "reproduction" && a.Code.Branch == "") || (b.Kind == "reproduction" && b.Code.Branch == "")
	if !detached {
		add("code", "branch", a.Code.Branch, b.Code.Branch)
	}
	add("code", "dirty", strconv.FormatBool(a.Code.Dirty), strconv.FormatBool(b.Code.Dirty))
	add("code", "patch", objDigest(a.Code.Patch), objDigest(b.Code.Patch))
	add("code", "untracked", strings.Join(a.Code.Untracked, " "), strings.Join(b.Code.Untracked, " "))
	pa, pb := ParsePackages(pkgsA), ParsePackages(pkgsB)
	for _, k := range unionKeys(pa, pb) {
		add("packages", k, pa[k], pb[k])
	}
	ea, eb := a.Environment, b.Environment
	add("environment", "os", ea.OS+" "+ea.Kernel, eb.OS+" "+eb.Kernel)
	add("environment", "cpu", fmt.Sprintf("%s x%d", ea.CPU, ea.CPUs), fmt.Sprintf("%s x%d", eb.CPU, eb.CPUs))
	add("environment", "python", pyVersion(ea.Python), pyVersion(eb.Python))
	add("environment", "torch", torchDesc(ea.Torch), torchDesc(eb.Torch))
	add("environment", "gpus", gpuDesc(ea.GPUs), gpuDesc(eb.GPUs))
	for _, k := range unionKeys(a.Variables, b.Variables) {
		if mirrorsSeeds(k, a, b) {
			continue // shown under seeds, or follows from the run's name
		}
		add("variables", k, a.Variables[k], b.Variables[k])
	}
	add("seeds", "seed", seedStr(a.Seeds.Seed), seedStr(b.Seeds.Seed))
	add("seeds", "rank", strconv.Itoa(a.Seeds.Rank), strconv.Itoa(b.Seeds.Rank))
	add("config", "config", objDigest(a.Config), objDigest(b.Config))
	artifacts("outputs", a.Outputs, b.Outputs)
	for _, k := range unionKeys(a.Metrics, b.Metrics) {
		x, okx := a.Metrics[k]
		y, oky := b.Metrics[k]
		d := Difference{Section: "metrics", Key: k, A: fmtNum(x, okx), B: fmtNum(y, oky)}
		if okx && oky {
			if x == y {
				continue
			}
			delta := y - x
			d.Delta = &delta
			if x != 0 {
				rel := delta / math.Abs(x)
				d.Relative = &rel
			}
		}
		out = append(out, d)
	}
	return out
}

// mirrorsSeeds reports whether variable k only repeats what the seeds
// section and the run names already say: CAS_SEED, CAS_RANK and
// CAS_RUN_DIR as cas run sets them, and PYTHONHASHSEED equal to the seed.
func mirrorsSeeds(k string, a, b *Manifest) bool {
	switch k {
	case "CAS_SEED", "CAS_RANK", "CAS_RUN_DIR":
		return true
	case "PYTHONHASHSEED":
		return a.Variables[k] == seedOrZero(a.Seeds.Seed) && b.Variables[k] == seedOrZero(b.Seeds.Seed)
	}
	return false
}

func seedOrZero(s *int64) string {
	if s == nil {
		return "0"
	}
	return strconv.FormatInt(*s, 10)
}

// ParsePackages reads a pip freeze or conda export list into name → version.
// The password of a URL version (git+https://user:TOKEN@host/...) is
// removed, as in the recorded list, so that a live list compares equal.
func ParsePackages(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(RedactURLs(string(b)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var name, ver string
		switch {
		case strings.Contains(line, " @ "):
			name, ver, _ = strings.Cut(line, " @ ")
		case strings.Contains(line, "=="):
			name, ver, _ = strings.Cut(line, "==")
		case strings.Count(line, "=") >= 1: // conda: name=version=build
			parts := strings.SplitN(line, "=", 3)
			name, ver = parts[0], parts[1]
		default:
			name = line
		}
		out[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(ver)
	}
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return slices.Sorted(maps.Keys(u))
}

func objDigest(o *Object) string {
	if o == nil {
		return ""
	}
	return o.Digest.String()
}

func seedStr(s *int64) string {
	if s == nil {
		return ""
	}
	return strconv.FormatInt(*s, 10)
}

func fmtNum(x float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

func pyVersion(p *Python) string {
	if p == nil {
		return ""
	}
	return p.Version
}

func torchDesc(t *Torch) string {
	if t == nil {
		return ""
	}
	s := t.Version
	if t.CUDA != "" {
		s += " cuda " + t.CUDA
	}
	if t.CuDNN != "" {
		s += " cudnn " + t.CuDNN
	}
	return s
}

func gpuDesc(gs []GPU) string {
	var parts []string
	for _, g := range gs {
		parts = append(parts, g.Name+" ("+g.Driver+")")
	}
	return strings.Join(parts, ", ")
}

// EnvDiff lists how the environment (and packages and variables) of b
// differ from the recorded a: what to check before re-running.
func EnvDiff(a, b *Manifest, pkgsA, pkgsB []byte) []Difference {
	var out []Difference
	for _, d := range Diff(a, b, pkgsA, pkgsB) {
		switch {
		case d.Section == "variables" && strings.HasPrefix(d.Key, "CAS_"):
			// set by cas run for that run, not part of the machine
		case d.Section == "environment", d.Section == "packages", d.Section == "variables":
			out = append(out, d)
		}
	}
	return out
}
