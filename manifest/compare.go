package manifest

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/ckpt"
)

// Verdict levels of a reproduction, from the strongest.
const (
	// VerdictExact: every output is bit-identical to the recorded one and
	// every metric is exactly equal.
	VerdictExact = "EXACT"
	// VerdictPass: every metric is within the tolerance, but some output
	// or metric differs; the report says which.
	VerdictPass = "PASS within tolerance"
	// VerdictFail: a metric is outside the tolerance or missing, the
	// command failed, or (with Exact) anything differs.
	VerdictFail = "FAIL"
)

// OutputCheck compares one recorded output with the reproduction's.
type OutputCheck struct {
	Name      string        `json:"name"`
	Reference digest.Digest `json:"reference"`
	New       digest.Digest `json:"new,omitzero"`
	Identical bool          `json:"identical"`
	// Checkpoints compares the checkpoints found in both, in the order
	// the run recorded them.
	Checkpoints []CheckpointCheck `json:"checkpoints,omitempty"`
}

// CheckpointCheck compares one checkpoint of an output.
type CheckpointCheck struct {
	Path      string `json:"path"`
	Identical bool   `json:"identical"`
	Missing   bool   `json:"missing,omitempty"` // not in the reproduction's output
	// TensorsDiffer counts tensors whose values differ, of Tensors;
	// FirstTensor is the first of them in the file.
	Tensors       int    `json:"tensors"`
	TensorsDiffer int    `json:"tensors_differ"`
	FirstTensor   string `json:"first_tensor,omitempty"`
	// RNGDiffer lists the RNG states (kind at path) whose fingerprints
	// differ; RNGStates counts those compared.
	RNGStates int      `json:"rng_states"`
	RNGDiffer []string `json:"rng_differ,omitempty"`
	Diagnosis string   `json:"diagnosis,omitempty"`
}

// Diagnoses of a checkpoint that differs.
const (
	diagUnseeded  = "tensors differ while every RNG state matches: an unseeded random source or a non-deterministic kernel"
	diagSeeding   = "RNG states differ: the run was seeded differently"
	diagBytesOnly = "the same tensors and RNG states in other bytes (metadata or serialization)"
)

// compareOutputs compares the reproduction's outputs with the recorded
// ones, output by output (matched by name) and, in outputs that differ,
// checkpoint by checkpoint, inspecting the stored files tensor by tensor.
func compareOutputs(ctx context.Context, r *cas.Repo, want, got []Artifact) []OutputCheck {
	checks := []OutputCheck{}
	byName := map[string]Artifact{}
	for _, a := range got {
		byName[a.Name] = a
	}
	for _, w := range want {
		c := OutputCheck{Name: w.Name, Reference: w.Digest}
		g, ok := byName[w.Name]
		if !ok {
			checks = append(checks, c)
			continue
		}
		c.New = g.Digest
		c.Identical = g.Digest == w.Digest
		if !c.Identical {
			c.Checkpoints = compareCheckpoints(ctx, r, w, g)
		}
		checks = append(checks, c)
	}
	return checks
}

func compareCheckpoints(ctx context.Context, r *cas.Repo, want, got Artifact) []CheckpointCheck {
	var out []CheckpointCheck
	byPath := map[string]Checkpoint{}
	for _, cp := range got.Checkpoints {
		byPath[cp.Path] = cp
	}
	for _, w := range want.Checkpoints {
		c := CheckpointCheck{Path: w.Path, Tensors: w.Tensors}
		g, ok := byPath[w.Path]
		if !ok {
			c.Missing = true
			out = append(out, c)
			continue
		}
		c.Identical = g.Digest == w.Digest
		fps := map[string]string{}
		for _, s := range g.RNG {
			fps[s.Kind+" at "+s.Path] = s.Fingerprint
		}
		for _, s := range w.RNG {
			c.RNGStates++
			if fps[s.Kind+" at "+s.Path] != s.Fingerprint {
				c.RNGDiffer = append(c.RNGDiffer, s.Kind+" at "+s.Path)
			}
		}
		if !c.Identical {
			if a, err := inspectStored(ctx, r, want, w); err == nil {
				if b, err := inspectStored(ctx, r, got, g); err == nil {
					d := ckpt.Diff(a, b)
					c.TensorsDiffer = len(d.Tensors)
					if len(d.Tensors) > 0 {
						c.FirstTensor = d.Tensors[0].Path
					}
				}
			}
			switch {
			case len(c.RNGDiffer) > 0:
				c.Diagnosis = diagSeeding
			case c.TensorsDiffer > 0:
				c.Diagnosis = diagUnseeded
			default:
				c.Diagnosis = diagBytesOnly
			}
		}
		out = append(out, c)
	}
	return out
}

// inspectStored inspects checkpoint cp of a stored output a, reading it
// from the store (checked against the digest the manifest recorded).
func inspectStored(ctx context.Context, r *cas.Repo, a Artifact, cp Checkpoint) (*ckpt.Report, error) {
	spec := a.Digest.String()
	if a.Kind == "dir" {
		spec += ":" + cp.Path
	}
	obj, err := r.Resolve(ctx, spec)
	if err != nil {
		return nil, err
	}
	if obj.Digest != cp.Digest {
		return nil, fmt.Errorf("file digest %s, recorded %s", obj.Digest.Short(), cp.Digest.Short())
	}
	tmp, err := os.CreateTemp("", "cas-checkpoint-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := r.WriteFile(ctx, obj, tmp); err != nil {
		return nil, err
	}
	return ckpt.Inspect(io.NewSectionReader(tmp, 0, obj.Size), obj.Size, cp.Path)
}

// verdict decides a reproduction's level from its checks. exact makes
// any difference a FAIL.
func (rep *Reproduction) verdict(exact bool) {
	metricsPass := rep.Pass
	metricsEqual := true
	for _, m := range rep.Metrics {
		if m.New == nil || *m.New != m.Reference {
			metricsEqual = false
		}
	}
	var differ []string
	for _, o := range rep.Outputs {
		if !o.Identical {
			differ = append(differ, o.Name)
		}
	}
	for _, o := range rep.Outputs {
		for _, c := range o.Checkpoints {
			if !c.Identical {
				rep.Diagnosis = fmt.Sprintf("first diverging checkpoint %s of output %s", c.Path, o.Name)
				if c.FirstTensor != "" {
					rep.Diagnosis += ", first tensor " + c.FirstTensor
				}
				rep.Diagnosis += ": " + c.Diagnosis
				break
			}
		}
		if rep.Diagnosis != "" {
			break
		}
	}
	switch {
	case !metricsPass:
		rep.Verdict = VerdictFail
	case len(differ) == 0 && metricsEqual && !rep.historyDiffers:
		rep.Verdict = VerdictExact
	case exact:
		rep.Verdict, rep.Pass = VerdictFail, false
		rep.Reason = "--exact: the reproduction differs"
		if rep.historyDiffers {
			rep.Reason = "--exact: the metrics history differs from the recorded one"
		}
		if len(differ) > 0 {
			rep.Reason = fmt.Sprintf("--exact: %d of %d outputs differ (%s)", len(differ), len(rep.Outputs), differ[0])
		}
	default:
		rep.Verdict = VerdictPass
	}
	switch {
	case rep.Verdict == VerdictFail:
	case len(differ) > 0:
		rep.Reason = fmt.Sprintf("%d of %d outputs differ from the recorded ones", len(differ), len(rep.Outputs))
	case rep.historyDiffers && rep.Curve == nil:
		rep.Reason = "the metrics history differs from the recorded one (--curve compares it)"
	case rep.historyDiffers:
		rep.Reason = "the metrics history differs from the recorded one"
	}
}
