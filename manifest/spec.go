package manifest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cas-ml/cas/cas"
)

// ErrNoArtifact: a run has no input or output of that name.
var ErrNoArtifact = errors.New("the run has no such input or output")

// ResolveSpec resolves a REF as cas.Repo.Resolve does, and names inside a
// run as well. RUN is a run name, runs/NAME, a pin of a run or a
// manifest's digest:
//
//	RUN                       the manifest
//	RUN:outputs/NAME[/path]   output NAME, or a file or directory in it
//	RUN:inputs/NAME[/path]    input NAME, or a file or directory in it
//	RUN:NAME[/path]           the same for an output (else an input) NAME
func ResolveSpec(ctx context.Context, r *cas.Repo, spec string) (*cas.Object, error) {
	head, sub := cas.SplitSpec(spec)
	if sub == "" {
		obj, err := r.Resolve(ctx, spec)
		if errors.Is(err, cas.ErrNotFound) && !strings.HasPrefix(spec, RefPrefix) && cas.ValidRefName(spec) {
			if o2, err2 := r.Resolve(ctx, RefPrefix+spec); err2 == nil {
				return o2, nil
			}
		}
		return obj, err
	}
	m, d, merr := Resolve(ctx, r, head)
	switch {
	case merr != nil && errors.Is(merr, ErrNotManifest) && !d.IsZero():
		// Not a run but a tree (or a file): the path below what head
		// resolved to, without resolving head again (on a remote, a
		// second request for its ref).
		return r.Resolve(ctx, d.String()+":"+sub)
	case merr != nil && d.IsZero():
		// Nothing at all, or not a name.
		return r.Resolve(ctx, spec)
	case merr != nil:
		return nil, merr // a run whose manifest cannot be read (a lazy store: a remote may have it)
	}
	first, rest, _ := strings.Cut(sub, "/")
	var a *Artifact
	switch first {
	case "outputs", "inputs":
		name, more, _ := strings.Cut(rest, "/")
		list := m.Outputs
		if first == "inputs" {
			list = m.Inputs
		}
		a, rest = findArtifact(list, name), more
		if a == nil {
			return nil, &NoArtifactError{Spec: spec, Run: head, Kind: strings.TrimSuffix(first, "s"), Name: name}
		}
	default:
		if a = findArtifact(m.Outputs, first); a == nil {
			a = findArtifact(m.Inputs, first)
		}
		if a == nil {
			return nil, &NoArtifactError{Spec: spec, Run: head, Name: first}
		}
	}
	obj, err := r.Resolve(ctx, a.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	if rest == "" {
		if obj.Kind != cas.KindDir && obj.Name == "" {
			obj.Name = a.Name
		}
		return obj, nil
	}
	return r.Lookup(ctx, obj, rest)
}

func findArtifact(list []Artifact, name string) *Artifact {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}
