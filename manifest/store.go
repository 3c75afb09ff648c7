package manifest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// Load reads and parses the manifest stored under d.
func Load(ctx context.Context, r *cas.Repo, d digest.Digest) (*Manifest, error) {
	b, err := r.ReadObject(ctx, d, MaxSize)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// LoadObject reads one of a manifest's objects (a patch, a package list,
// a log), or returns nil for an absent one.
func LoadObject(ctx context.Context, r *cas.Repo, o *Object, max int64) ([]byte, error) {
	if o == nil {
		return nil, nil
	}
	return r.ReadObject(ctx, o.Digest, max)
}

// Resolve loads the manifest a REF names, or reports that it names
// something else with ErrNotManifest.
func Resolve(ctx context.Context, r *cas.Repo, ref string) (*Manifest, digest.Digest, error) {
	obj, err := ResolveSpec(ctx, r, ref) // a bare run name is runs/NAME
	if err != nil {
		return nil, digest.Zero, err
	}
	if obj.Kind == cas.KindDir || obj.Size > MaxSize {
		return nil, obj.Digest, fmt.Errorf("%s: %w", ref, ErrNotManifest)
	}
	m, err := Load(ctx, r, obj.Digest)
	if err != nil {
		return nil, obj.Digest, fmt.Errorf("%s: %w", ref, err)
	}
	return m, obj.Digest, nil
}

// RunEntry is one run in the log.
type RunEntry struct {
	Ref      string
	Digest   digest.Digest
	Manifest *Manifest
}

// Runs lists the manifests under runs/, newest first. Refs whose target
// cannot be read are skipped; the first such error is returned beside
// what could be listed.
func Runs(ctx context.Context, r *cas.Repo) ([]RunEntry, error) {
	refs, err := r.Refs(ctx)
	var partial *cas.PartialError
	if err != nil && !errors.As(err, &partial) {
		return nil, err
	}
	var out []RunEntry
	var firstErr error
	if partial != nil {
		firstErr = partial // refs that failed validation are said, not dropped silently
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref.Name, RefPrefix) || ref.Type != cas.TypeManifest {
			continue
		}
		m, err := Load(ctx, r, ref.Target)
		if err != nil {
			if firstErr == nil && !errors.Is(err, ctx.Err()) {
				firstErr = fmt.Errorf("%s: %w", ref.Name, err)
			}
			continue
		}
		out = append(out, RunEntry{Ref: ref.Name, Digest: ref.Target, Manifest: m})
	}
	slices.SortStableFunc(out, func(a, b RunEntry) int { return b.Manifest.Started.Compare(a.Manifest.Started) })
	return out, firstErr
}
