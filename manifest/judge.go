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
// Reports that render a reproduction after the fact use it, and their
// verdict is never kinder than Reproduce's nor than the report's own
// standard: every recorded metric is compared, within tol or the
// tolerance the reproduction was run with, whichever is smaller, and the
// outputs and the curve as well when it was run with --exact or --curve
// (the criteria its manifest records, v3). A --metric it was run with
// narrows nothing here.
func JudgeRecorded(ctx context.Context, r *cas.Repo, orig *Manifest, od digest.Digest, repro *Manifest, rd digest.Digest, ref string, tol float64) *Reproduction {
	_, compared := reproOutputs(orig, "", r.Dir)
	res := &Result{Digest: rd, Manifest: repro, Ref: ref}
	opts := ReproduceOptions{Tolerance: tol}
	if c := repro.Criteria; c != nil {
		opts.Tolerance = min(tol, c.Tolerance)
		opts.Exact, opts.Curve = c.Exact, c.Curve
	}
	return judgeReproduction(ctx, r, orig, od, res, repro.WorkDir, compared, opts)
}
