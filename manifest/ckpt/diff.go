package ckpt

import "github.com/cas-ml/cas/digest"

// Change operations.
const (
	OpAdded   = "added"
	OpRemoved = "removed"
	OpChanged = "changed"
	OpEqual   = "equal"
)

// Changes is what changed from one checkpoint to another.
type Changes struct {
	// Tensors lists tensors added, removed or changed (by digest, dtype
	// or shape), in the order of b then a; RNG-state tensors are left to
	// RNG.
	Tensors []TensorChange `json:"tensors"`
	// Unchanged counts tensors equal in both.
	Unchanged int `json:"unchanged"`
	// RNG compares every RNG state of either, matched by kind and path.
	RNG []RNGChange `json:"rng_states"`
}

// TensorChange is one tensor that differs.
type TensorChange struct {
	Path string  `json:"path"`
	Op   string  `json:"op"`
	Old  *Tensor `json:"old,omitempty"`
	New  *Tensor `json:"new,omitempty"`
}

// RNGChange compares one RNG state.
type RNGChange struct {
	Kind string        `json:"kind"`
	Path string        `json:"path"`
	Op   string        `json:"op"` // equal, changed, added or removed
	Old  digest.Digest `json:"old,omitzero"`
	New  digest.Digest `json:"new,omitzero"`
}

// Equal says whether nothing changed.
func (d *Changes) Equal() bool {
	if len(d.Tensors) > 0 {
		return false
	}
	for _, c := range d.RNG {
		if c.Op != OpEqual {
			return false
		}
	}
	return true
}

// Diff compares two reports: tensors by path and digest, RNG states by
// kind and path and fingerprint. A tensor or state whose digest could not
// be computed on either side counts as changed.
func Diff(a, b *Report) *Changes {
	d := &Changes{Tensors: []TensorChange{}, RNG: []RNGChange{}}
	old := map[string]*Tensor{}
	for i := range a.Tensors {
		if t := &a.Tensors[i]; t.RNG == "" {
			old[t.Path] = t
		}
	}
	seen := map[string]bool{}
	for i := range b.Tensors {
		t := &b.Tensors[i]
		if t.RNG != "" {
			continue
		}
		seen[t.Path] = true
		o, ok := old[t.Path]
		switch {
		case !ok:
			d.Tensors = append(d.Tensors, TensorChange{Path: t.Path, Op: OpAdded, New: t})
		case o.Digest != t.Digest || o.Digest.IsZero() || o.DType != t.DType || !sameShape(o.Shape, t.Shape):
			d.Tensors = append(d.Tensors, TensorChange{Path: t.Path, Op: OpChanged, Old: o, New: t})
		default:
			d.Unchanged++
		}
	}
	for i := range a.Tensors {
		if t := &a.Tensors[i]; t.RNG == "" && !seen[t.Path] {
			d.Tensors = append(d.Tensors, TensorChange{Path: t.Path, Op: OpRemoved, Old: t})
		}
	}
	type key struct{ kind, path string }
	oldRNG := map[key]digest.Digest{}
	for _, s := range a.RNG {
		oldRNG[key{s.Kind, s.Path}] = s.Fingerprint
	}
	seenRNG := map[key]bool{}
	for _, s := range b.RNG {
		k := key{s.Kind, s.Path}
		seenRNG[k] = true
		o, ok := oldRNG[k]
		c := RNGChange{Kind: s.Kind, Path: s.Path, Op: OpEqual, Old: o, New: s.Fingerprint}
		switch {
		case !ok:
			c.Op = OpAdded
		case o != s.Fingerprint || o.IsZero():
			c.Op = OpChanged
		}
		d.RNG = append(d.RNG, c)
	}
	for _, s := range a.RNG {
		if k := (key{s.Kind, s.Path}); !seenRNG[k] {
			d.RNG = append(d.RNG, RNGChange{Kind: s.Kind, Path: s.Path, Op: OpRemoved, Old: s.Fingerprint})
		}
	}
	return d
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
