package cas

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// ErrInvalidObject wraps every report of an object read from a store or a
// bucket that cas would never have written (remote.ErrInvalidObject).
var ErrInvalidObject = remote.ErrInvalidObject

// InvalidError names an object that failed validation, and why.
type InvalidError = remote.InvalidError

// checkTarget validates what a ref or pin says of its target: a digest, a
// kind a ref may name (a file or a directory, never a link), a size, a
// base name that is a single path element, and a known type.
func checkTarget(target digest.Digest, kind Kind, size int64, file, typ string) string {
	switch {
	case target == digest.Zero:
		return "no target digest"
	case kind != KindFile && kind != KindExec && kind != KindDir:
		return fmt.Sprintf("kind %s cannot be named", kind)
	case size < 0:
		return "negative size"
	case file != "" && !ValidName(file):
		return fmt.Sprintf("file name %q is not a single path element", file)
	case file != "" && kind == KindDir:
		return "a directory with a file name"
	case typ != "" && typ != TypeManifest:
		return fmt.Sprintf("unknown type %q", typ)
	}
	return ""
}

// TypeManifest is the Type of a ref or pin that names an experiment manifest.
const TypeManifest = "manifest"

// validate checks a ref read from a store.
func (ref *Ref) validate() error {
	if why := checkTarget(ref.Target, ref.Kind, ref.Size, ref.File, ref.Type); why != "" {
		return &InvalidError{What: "ref", Name: ref.Name, Reason: why}
	}
	if len(ref.Previous) > 10*maxRefHistory {
		return &InvalidError{What: "ref", Name: ref.Name, Reason: "history too long"}
	}
	return nil
}

// validate checks a pin read from a store.
func (p *Pin) validate() error {
	if why := checkTarget(p.Target, p.Kind, p.Size, p.File, p.Type); why != "" {
		return &InvalidError{What: "pin", Name: p.Name, Reason: why}
	}
	for _, root := range p.Roots {
		if why := checkTarget(root.Digest, root.Kind, root.Size, "", ""); why != "" {
			return &InvalidError{What: "pin", Name: p.Name, Reason: "root " + root.Digest.Short() + ": " + why}
		}
	}
	return nil
}

// PartialError is returned beside the good results of a listing (refs,
// pins) when some entries could not be read: each is in Errs, naming it.
// A caller that only shows a listing warns of them and goes on; one that
// relies on the listing being whole (gc) stops.
type PartialError struct {
	What string // "refs", "pins"
	Errs []error
}

func (e *PartialError) Error() string {
	if len(e.Errs) == 1 {
		return fmt.Sprintf("%s: %v", e.What, e.Errs[0])
	}
	return fmt.Sprintf("%s: %d unreadable, first: %v", e.What, len(e.Errs), e.Errs[0])
}

func (e *PartialError) Unwrap() []error { return e.Errs }

// listNamed reads every object under prefix on be with read (refs, pins):
// one gone meanwhile (ErrNotFound) is left out, one whose key is not a
// name or that cannot be read is reported in a *PartialError beside the
// others (what names the kind: "ref", "pin").
func listNamed[T any](ctx context.Context, be remote.Backend, prefix, what string, read func(name string) (T, error)) ([]T, error) {
	var names []string
	err := be.List(ctx, prefix, func(oi remote.ObjectInfo) error {
		names = append(names, strings.TrimPrefix(oi.Key, prefix))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(names))
	var bad []error
	for _, n := range names {
		if !ValidRefName(n) {
			bad = append(bad, &InvalidError{What: what, Name: fmt.Sprintf("%q", n), Reason: "not a " + what + " name"})
			continue
		}
		v, err := read(n)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // deleted meanwhile
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			bad = append(bad, err)
			continue
		}
		out = append(out, v)
	}
	if len(bad) > 0 {
		return out, &PartialError{What: what + "s", Errs: bad}
	}
	return out, nil
}
