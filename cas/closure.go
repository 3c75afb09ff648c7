package cas

import (
	"context"
	"errors"
	"fmt"

	"github.com/cas-ml/cas/manifest/schema"
)

// Kept is one object of a manifest's closure, as the store holds it.
type Kept struct {
	// Part says what the manifest (Part.Of) calls it.
	Part schema.Part
	// Object is the stored object; valid when Err is nil.
	Object Object
	// Err says why the part could not be resolved (or, for a reproduced
	// manifest, read); IsMissing tells an absent part from a damaged one.
	Err error
}

// errNotManifest says that an object is not a manifest, so it keeps
// nothing beside itself.
var errNotManifest = errors.New("not a manifest")

// Keeps returns what obj keeps alive beside itself. For an experiment
// manifest that is its closure (schema.Walk: inputs, outputs, code patch,
// package list, config, logs, and the runs it reproduces with theirs),
// each part resolved in r; every other object keeps nothing. obj.Type is
// set to TypeManifest when obj is a manifest not marked as one.
//
// This is the one rule gc, pin, pull and refs follow: a pinned or named
// run keeps its whole closure. The error is non-nil only when obj is
// marked a manifest and cannot be read or parsed, so what it keeps is
// unknown; parts that cannot be resolved are returned with their Err.
func (r *Repo) Keeps(ctx context.Context, obj *Object) ([]Kept, error) {
	m, err := r.loadManifest(ctx, *obj)
	if errors.Is(err, errNotManifest) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s unreadable, so what it keeps is unknown: %w", obj.Digest.Short(), err)
	}
	obj.Type = TypeManifest
	var kept []Kept
	schema.Walk(m, obj.Digest, func(p schema.Part) *schema.Manifest {
		k := Kept{Part: p}
		o, err := r.objectOf(ctx, p.Digest, "")
		if err != nil {
			k.Err = err
			kept = append(kept, k)
			return nil
		}
		k.Object = *o
		var next *schema.Manifest
		if p.Kind == schema.PartReproduced {
			if next, err = r.loadManifest(ctx, Object{Digest: o.Digest, Kind: o.Kind, Size: o.Size, Type: TypeManifest}); err != nil {
				k.Err = err
			}
		}
		kept = append(kept, k)
		return next
	})
	return kept, nil
}

// Closure returns the objects obj keeps alive beside itself (Keeps),
// failing on the first part that cannot be resolved.
func (r *Repo) Closure(ctx context.Context, obj *Object) ([]Object, error) {
	objs, _, err := r.closureParts(ctx, obj)
	return objs, err
}

// closureParts is Closure with, for each object, what it is to the
// manifest that keeps it, as an error about it names it: "manifest
// 1f99252f0779, output model".
func (r *Repo) closureParts(ctx context.Context, obj *Object) ([]Object, []string, error) {
	kept, err := r.Keeps(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	objs := make([]Object, 0, len(kept))
	whats := make([]string, 0, len(kept))
	for _, k := range kept {
		if k.Err != nil {
			return nil, nil, fmt.Errorf("manifest %s: %s %s: %w", obj.Digest.Short(), k.Part, k.Part.Digest.Short(), k.Err)
		}
		objs = append(objs, k.Object)
		whats = append(whats, fmt.Sprintf("manifest %s, %s", k.Part.Of.Short(), k.Part))
	}
	return objs, whats, nil
}

// withKept returns obj and the parts of what it keeps (Keeps) that r
// resolves, what a name for obj (a ref, a pending upload) must keep from
// gc; kept lists every part, resolved or not, for a caller that must
// refuse a missing one.
func (r *Repo) withKept(ctx context.Context, obj *Object) (objs []Object, kept []Kept, err error) {
	objs = []Object{*obj}
	if obj.Type != TypeManifest {
		return objs, nil, nil
	}
	if kept, err = r.Keeps(ctx, obj); err != nil {
		return nil, nil, err
	}
	for _, k := range kept {
		if k.Err == nil {
			objs = append(objs, k.Object)
		}
	}
	return objs, kept, nil
}

// loadManifest reads and parses obj when it is a manifest. It returns
// errNotManifest for an object that is not one, and any other error only
// when obj is marked a manifest (Type) and still cannot be read.
func (r *Repo) loadManifest(ctx context.Context, obj Object) (*schema.Manifest, error) {
	marked := obj.Type == TypeManifest
	switch {
	case marked && obj.Kind == KindDir:
		return nil, fmt.Errorf("%s is a directory", obj.Digest.Short())
	case marked && obj.Size > schema.MaxSize:
		// Named a manifest, yet too large to read: what it keeps is
		// unknown, so nothing may act as if it kept nothing.
		return nil, fmt.Errorf("%d bytes, over the %d a manifest may hold", obj.Size, schema.MaxSize)
	case obj.Kind == KindDir || obj.Size == 0 || obj.Size > schema.MaxSize:
		return nil, errNotManifest
	}
	b, err := r.ReadObject(ctx, obj.Digest, schema.MaxSize)
	if err != nil {
		if marked {
			return nil, err
		}
		return nil, errNotManifest // a data file; missing data is another matter
	}
	if !marked && !schema.LooksLikeManifest(b) {
		return nil, errNotManifest
	}
	m, err := schema.Parse(b)
	if err != nil {
		if marked {
			return nil, err
		}
		return nil, errNotManifest
	}
	return m, nil
}
