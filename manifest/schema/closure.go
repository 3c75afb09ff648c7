package schema

import "github.com/cas-ml/cas/digest"

// PartKind says what role an object plays in a manifest.
type PartKind string

// The parts of a manifest. Each names a stored object the manifest keeps
// alive: gc never collects a part of a pinned manifest, pin publishes
// every part beside the manifest, verify checks each.
const (
	PartInput      PartKind = "input"
	PartOutput     PartKind = "output"
	PartCodePatch  PartKind = "code patch"
	PartPackages   PartKind = "package list"
	PartConfig     PartKind = "config"
	PartStdout     PartKind = "stdout log"
	PartStderr     PartKind = "stderr log"
	PartReproduced PartKind = "reproduced manifest"
	// PartMetricsHistory is the run's per-step metrics (HistoryFile).
	PartMetricsHistory PartKind = "metrics history"
)

// Part is one object a manifest references.
type Part struct {
	Kind PartKind
	// Name is the artifact's name, for inputs and outputs.
	Name   string
	Digest digest.Digest
	// Size is the recorded size; for a tree, the bytes of its files.
	Size int64
	// Of is the manifest that names the part: the one walked, or one it
	// reproduces.
	Of digest.Digest
}

// String names the part as reports do: "input train", "code patch".
func (p Part) String() string {
	if p.Name != "" {
		return string(p.Kind) + " " + p.Name
	}
	return string(p.Kind)
}

// Parts lists every object m references, in a fixed order: inputs,
// outputs, code patch, package list, config, logs, metrics history, and
// the manifest it reproduces. Of is left zero.
func (m *Manifest) Parts() []Part {
	var parts []Part
	for _, a := range m.Inputs {
		parts = append(parts, Part{Kind: PartInput, Name: a.Name, Digest: a.Digest, Size: a.Size})
	}
	for _, a := range m.Outputs {
		parts = append(parts, Part{Kind: PartOutput, Name: a.Name, Digest: a.Digest, Size: a.Size})
	}
	obj := func(k PartKind, o *Object) {
		if o != nil && !o.Digest.IsZero() {
			parts = append(parts, Part{Kind: k, Digest: o.Digest, Size: o.Size})
		}
	}
	obj(PartCodePatch, m.Code.Patch)
	obj(PartPackages, m.Environment.Packages)
	obj(PartConfig, m.Config)
	obj(PartStdout, m.Logs.Stdout)
	obj(PartStderr, m.Logs.Stderr)
	if h := m.MetricsHistory; h != nil {
		obj(PartMetricsHistory, &h.Object)
	}
	if !m.ReproductionOf.IsZero() {
		parts = append(parts, Part{Kind: PartReproduced, Digest: m.ReproductionOf})
	}
	return parts
}

// Walk calls fn once for each object in the closure of the manifest m
// (whose digest is self): every part of m and, through the manifests it
// reproduces, of those too, each digest once and never self. This is
// the one definition of what a run keeps alive.
//
// For a PartReproduced part, fn returns the reproduced manifest to walk
// into, or nil when it could not be read (the caller records why).
func Walk(m *Manifest, self digest.Digest, fn func(Part) *Manifest) {
	seen := map[digest.Digest]bool{self: true}
	var walk func(m *Manifest, of digest.Digest)
	walk = func(m *Manifest, of digest.Digest) {
		for _, p := range m.Parts() {
			if seen[p.Digest] {
				continue
			}
			seen[p.Digest] = true
			p.Of = of
			next := fn(p)
			if p.Kind == PartReproduced && next != nil {
				walk(next, p.Digest)
			}
		}
	}
	walk(m, self)
}
