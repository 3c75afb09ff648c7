package manifest

import (
	"context"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// JudgeRecorded is the verdict of a reproduction recorded earlier (a
// manifest of kind "reproduction" whose ReproductionOf is od): the same
// comparison Reproduce makes when it has run, of the environment, the
// exit status, the metrics and the outputs the recorded command wrote.
// Reports that render a reproduction after the fact use it, so their
// verdict is Reproduce's: a reproduction is judged by the criteria its
// manifest records (the tolerance, --exact, --metric and --curve it was
// run with); tol judges one recorded before manifests held criteria
// (v3): every recorded metric within tol. With stricter, tol also
// tightens a recorded tolerance looser than it (a reviewer's explicit
// --tolerance), so that a verdict is never kinder than the reviewer asked.
func JudgeRecorded(ctx context.Context, r *cas.Repo, orig *Manifest, od digest.Digest, repro *Manifest, rd digest.Digest, ref string, tol float64, stricter bool) *Reproduction {
	_, compared := reproOutputs(orig, "", r.Dir)
	res := &Result{Digest: rd, Manifest: repro, Ref: ref}
	opts := ReproduceOptions{Tolerance: tol}
	if c := repro.Criteria; c != nil {
		opts = ReproduceOptions{Tolerance: c.Tolerance, Exact: c.Exact, Metrics: c.Metrics, Curve: c.Curve}
		if stricter && tol < opts.Tolerance {
			opts.Tolerance = tol
		}
	}
	return judgeReproduction(ctx, r, orig, od, res, repro.WorkDir, compared, opts)
}
