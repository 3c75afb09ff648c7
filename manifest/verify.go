package manifest

import (
	"context"
	"fmt"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/words"
	"github.com/cas-ml/cas/manifest/schema"
)

// CheckKind says what a check is about, so that a report can pick and
// render checks without reading their text.
type CheckKind string

// The kinds of checks.
const (
	// CheckCanonical: the stored manifest is in canonical form.
	CheckCanonical CheckKind = "canonical"
	// CheckArtifact: an input or output, every byte recomputed.
	CheckArtifact CheckKind = "artifact"
	// CheckObject: a part kept as an object (patch, packages, config, logs).
	CheckObject CheckKind = "object"
	// CheckCheckpoint: a checkpoint's tensor count and RNG fingerprints,
	// recomputed from the stored bytes.
	CheckCheckpoint CheckKind = "checkpoint"
	// CheckPin: a pin and its target.
	CheckPin CheckKind = "pin"
	// CheckSignature: a pin's signature.
	CheckSignature CheckKind = "signature"
	// CheckPart: one object of a pinned manifest's closure.
	CheckPart CheckKind = "part"
	// CheckProblem: a problem found outside any object checked.
	CheckProblem CheckKind = "problem"
)

// Check is one line of a manifest's verification report.
type Check struct {
	Kind   CheckKind `json:"-"`
	What   string    `json:"what"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
	// Missing: the check failed only because data is not in the store
	// read (a reviewer's store before `cas pull`), not because anything
	// read was wrong.
	Missing bool `json:"missing,omitempty"`
}

// Verify checks everything a manifest binds: that it is in canonical
// form, that every input and output is present and intact (every chunk,
// file and tree digest recomputed), that every object it refers to (patch,
// package list, config, logs) is, and that the RNG fingerprints and tensor
// counts of its output checkpoints, recomputed from the stored bytes,
// equal the recorded ones.
func Verify(ctx context.Context, r *cas.Repo, m *Manifest, d digest.Digest) ([]Check, error) {
	checks := []Check{canonicalCheck(m, d)}
	artifacts := func(kind string, as []Artifact) {
		for _, a := range as {
			checks = append(checks, newCheck(CheckArtifact, fmt.Sprintf("%s %s %s", kind, a.Name, a.Digest.Short()), verifyArtifact(ctx, r, a), ""))
			checks = append(checks, checkpointChecks(ctx, r, a)...)
		}
	}
	artifacts("input", m.Inputs)
	artifacts("output", m.Outputs)
	for _, p := range m.Parts() {
		switch p.Kind {
		case schema.PartInput, schema.PartOutput, schema.PartReproduced:
			continue // checked above, or a manifest of its own
		}
		b, err := r.ReadObject(ctx, p.Digest, 1<<40)
		if err == nil && int64(len(b)) != p.Size {
			err = fmt.Errorf("%d bytes, recorded %d", len(b), p.Size)
		}
		checks = append(checks, newCheck(CheckObject, p.String()+" "+p.Digest.Short(), err, ""))
	}
	return checks, nil
}

// newCheck is a check that passed, or failed with err (missing when err
// says only that data is absent).
func newCheck(kind CheckKind, what string, err error, detail string) Check {
	c := Check{Kind: kind, What: what, OK: err == nil, Detail: detail}
	if err != nil {
		c.Detail, c.Missing = err.Error(), cas.IsMissing(err)
	}
	return c
}

// canonicalCheck checks that m, stored under d, is in canonical form.
func canonicalCheck(m *Manifest, d digest.Digest) Check {
	enc, err := m.Encode()
	if err == nil && digest.Of(enc) != d {
		err = fmt.Errorf("stored bytes are not in canonical form")
	}
	return newCheck(CheckCanonical, "manifest "+d.Short()+" canonical", err, "")
}

// checkpointChecks re-inspects the checkpoints recorded in artifact a.
func checkpointChecks(ctx context.Context, r *cas.Repo, a Artifact) []Check {
	var checks []Check
	for _, cp := range a.Checkpoints {
		detail, err := verifyCheckpoint(ctx, r, a, cp)
		checks = append(checks, newCheck(CheckCheckpoint, fmt.Sprintf("checkpoint %s/%s: %s, %s", a.Name, cp.Path, words.Count(cp.Tensors, "tensor"), words.Count(len(cp.RNG), "RNG state")), err, detail))
	}
	return checks
}

func verifyArtifact(ctx context.Context, r *cas.Repo, a Artifact) error {
	obj, err := r.Resolve(ctx, a.Digest.String())
	if err != nil {
		return err
	}
	rep, err := r.Verify(ctx, obj, a.Name, nil)
	if err != nil {
		return err
	}
	if !rep.OK() {
		if !rep.Damaged() {
			return fmt.Errorf("%d not in the store read: %s: %w", len(rep.Problems), rep.Problems[0].Path, cas.ErrNotFound)
		}
		return fmt.Errorf("%d damaged: %s: %s", len(rep.Problems), rep.Problems[0].Path, rep.Problems[0].Err)
	}
	return nil
}

// verifyCheckpoint re-inspects a stored checkpoint and compares its RNG
// fingerprints and tensor count with the recorded ones.
func verifyCheckpoint(ctx context.Context, r *cas.Repo, a Artifact, cp Checkpoint) (string, error) {
	rep, err := inspectStored(ctx, r, a, cp)
	if err != nil {
		return "", err
	}
	if len(rep.Tensors) != cp.Tensors {
		return "", fmt.Errorf("%d tensors, recorded %d", len(rep.Tensors), cp.Tensors)
	}
	got := map[string]string{}
	for _, s := range rep.RNG {
		got[s.Kind+" "+s.Path] = s.Fingerprint.String()
	}
	for _, s := range cp.RNG {
		if fp := got[s.Kind+" "+s.Path]; fp != s.Fingerprint {
			return "", fmt.Errorf("RNG state %s at %s: fingerprint %s, recorded %s", s.Kind, s.Path, short(fp), short(s.Fingerprint))
		}
	}
	return "RNG fingerprints recomputed and equal", nil
}

// short abbreviates a digest-like string for a report line.
func short(s string) string {
	if d, err := digest.Parse(s); err == nil {
		return d.Short()
	}
	return s
}
