package manifest

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/schema"
)

// VerifyPin verifies what pin p keeps: its target and, for a manifest,
// every object of the run's closure (cas.Repo.Keeps), found from the
// manifest itself — the pin's own list of roots is not signed, so it is
// not trusted. When every byte is intact, it adds what the manifest binds
// beyond bytes: its canonical form and its checkpoints' RNG fingerprints.
//
// The report counts every byte read; a problem of a closure object is
// labelled "input train: path". The checks are the lines of a reviewer's
// report: the pin, each object read, each problem outside them, and the
// manifest's own checks. A signature is checked by the caller, before.
func VerifyPin(ctx context.Context, r *cas.Repo, p *cas.Pin, prog *cas.Progress) (*cas.VerifyReport, []Check, error) {
	label := cas.PinPrefix + p.Name
	target := p.Object()
	rep, err := r.Verify(ctx, &target, label, prog)
	if err != nil {
		return nil, nil, err
	}
	checks := []Check{
		{Kind: CheckPin, What: "pin " + p.Name, OK: true, Detail: fmt.Sprintf("%s (%s)", p.Target, cmp.Or(p.Type, p.Kind.String()))},
		objectCheck(label, rep),
	}
	if !rep.OK() {
		return rep, checks, nil
	}
	// Whether the target is a run is read from the target itself: the
	// pin's type field is not signed, and a pin stripped of it must not
	// pass for a plain file.
	kept, err := r.Keeps(ctx, &target)
	if err != nil {
		rep.Problems = append(rep.Problems, cas.Problem{Path: label, Err: err.Error()})
		checks = append(checks, Check{Kind: CheckProblem, What: label, Detail: err.Error()})
		return rep, checks, nil
	}
	if target.Type != cas.TypeManifest {
		return rep, checks, nil
	}
	for _, k := range kept {
		what := partLabel(k.Part, p.Target)
		problem := func(err error) {
			missing := cas.IsMissing(err)
			detail := fmt.Sprintf("%s: %v", k.Part.Digest.Short(), err)
			rep.Problems = append(rep.Problems, cas.Problem{Path: what, Err: detail, Missing: missing})
			checks = append(checks, Check{Kind: CheckProblem, What: what, Detail: detail, Missing: missing})
		}
		if k.Object.Digest.IsZero() { // not resolved: nothing to read
			problem(k.Err)
			continue
		}
		sub, err := r.Verify(ctx, &k.Object, what, prog)
		if err != nil {
			return nil, nil, err
		}
		rep.Objects = append(rep.Objects, what)
		rep.Files += sub.Files
		rep.Dirs += sub.Dirs
		rep.Bytes += sub.Bytes
		for _, pr := range sub.Problems {
			pr.Path = what + ": " + pr.Path
			rep.Problems = append(rep.Problems, pr)
		}
		c := objectCheck(what, sub)
		c.Kind = CheckPart
		checks = append(checks, c)
		if k.Err != nil && sub.OK() {
			problem(k.Err) // a reproduced manifest, whole yet unreadable
		}
	}
	if !rep.OK() {
		return rep, checks, nil
	}
	m, err := Load(ctx, r, p.Target)
	if err != nil {
		return nil, nil, err
	}
	// What the manifest binds beyond bytes; the bytes were checked above.
	checks = append(checks, canonicalCheck(m, p.Target))
	for _, a := range slices.Concat(m.Inputs, m.Outputs) {
		checks = append(checks, checkpointChecks(ctx, r, a)...)
	}
	return rep, checks, nil
}

// objectCheck is the line of one object verified whole: ok, or failed
// as damaged (anything read was wrong) or missing (only absent data).
func objectCheck(what string, rep *cas.VerifyReport) Check {
	c := Check{Kind: CheckPin, What: what, OK: rep.OK()}
	switch {
	case rep.Damaged():
		c.Detail = "damaged"
	case !rep.OK():
		c.Detail, c.Missing = "not in the store read", true
	}
	return c
}

// partLabel names a closure object in a pin's report: "input train", or
// for a part of a run the pinned one reproduces, "input train of
// reproduced run 1a2b3c4d5e6f".
func partLabel(p schema.Part, pinned digest.Digest) string {
	if p.Of == pinned {
		return p.String()
	}
	return p.String() + " of reproduced run " + p.Of.Short()
}
