package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// PinPrefix is the backend key prefix of pins: pin NAME is kept at
// pins/NAME, beside refs/, on the store and on a remote.
const PinPrefix = "pins/"

// Errors about pins.
var (
	// ErrPinExists: the name is pinned already, to another target. A pin
	// never moves; unpin it first (cas unpin --force).
	ErrPinExists = errors.New("cas: pin exists with another target")
	// ErrIncomplete: some object of a pin's closure is missing where the
	// pin would be written, so the pin was not written.
	ErrIncomplete = errors.New("cas: pin closure incomplete")
)

// Pin is a named, immutable pointer to a manifest or tree that makes it
// and its whole closure permanent: a GC root, and, on a remote, a
// published result. Its JSON is a documented format (docs/publish.md).
type Pin struct {
	Name   string        `json:"name"`
	Target digest.Digest `json:"target"`
	Kind   Kind          `json:"kind"`
	Size   int64         `json:"size"`
	// File is the base name of a single pinned file, where known.
	File string `json:"file,omitempty"`
	// Type is "manifest" for an experiment manifest; empty otherwise.
	Type    string    `json:"type,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
	// Roots are the objects beside the target that its closure holds: for
	// a manifest, every input, output, patch, package list, log and config
	// it names. GC marks from the target and every root, so it needs no
	// knowledge of manifests.
	Roots []PinRoot `json:"roots,omitempty"`
	// Envelope is a DSSE envelope of an in-toto statement about the pin,
	// where it was signed (package manifest/attest).
	Envelope json.RawMessage `json:"envelope,omitempty"`

	// Existing is set by Pin when the name already pinned this target:
	// nothing was written and the stored pin is returned.
	Existing bool `json:"-"`
}

// PinRoot is one object of a pin's closure.
type PinRoot struct {
	Digest digest.Digest `json:"digest"`
	Kind   Kind          `json:"kind"`
	Size   int64         `json:"size"`
}

// Object returns what the pin points at.
func (p *Pin) Object() Object {
	return Object{Digest: p.Target, Kind: p.Kind, Size: p.Size, Name: p.File, Type: p.Type}
}

// Signed reports whether the pin carries a signature envelope.
func (p *Pin) Signed() bool { return len(p.Envelope) > 0 }

// PinOptions say what to record beside a pin's target.
type PinOptions struct {
	Message string
	// Envelope is a signed statement (DSSE JSON), or nil.
	Envelope []byte
	// Roots are the closure's objects beside the target (for a manifest,
	// what it references; see Pin.Roots). The caller computes them: cas
	// does not read manifests.
	Roots []Object
	// Progress, if set, counts what the upload to a remote moves.
	Progress *Progress
}

// Pin writes pin name for obj on be (a remote), or on the local store
// when be is nil. It first makes sure the closure (obj, opts.Roots and
// everything below them) is whole on be: uploading to a remote whatever
// it lacks, then checking that every pack of the closure is there;
// otherwise it fails with ErrIncomplete and writes nothing.
//
// The write is conditional (If-None-Match): pinning a name to the target
// it already has is a no-op returning the stored pin (Existing set);
// pinning it to another target fails with ErrPinExists.
func (r *Repo) Pin(ctx context.Context, be remote.Backend, name string, obj Object, opts PinOptions) (*Pin, error) {
	if !ValidRefName(name) {
		return nil, fmt.Errorf("%q: %w", name, ErrBadRefName)
	}
	if be == nil {
		be = r.Backend
	}
	if opts.Envelope != nil && !json.Valid(opts.Envelope) {
		return nil, fmt.Errorf("pin %s: signature envelope is not JSON", name)
	}
	// A conflicting pin fails before anything is uploaded.
	if old, err := r.GetPin(ctx, be, name); err == nil {
		if old.Target != obj.Digest {
			return nil, pinConflict(old, obj.Digest)
		}
		old.Existing = true
		return old, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	roots := append([]Object{obj}, opts.Roots...)
	if be != r.Backend {
		if _, err := r.Upload(ctx, be, opts.Progress); err != nil {
			return nil, fmt.Errorf("pin %s: upload to %s: %w", name, be.Location(), err)
		}
	}
	if err := r.CheckClosure(ctx, be, roots); err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	if err := r.GuardGC(ctx, be, roots...); err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	p := &Pin{Name: name, Target: obj.Digest, Kind: obj.Kind, Size: obj.Size, File: obj.Name, Type: obj.Type,
		Message: opts.Message, Time: r.Now().UTC().Truncate(time.Millisecond), Envelope: opts.Envelope}
	seen := map[digest.Digest]bool{obj.Digest: true}
	for _, o := range opts.Roots {
		if !seen[o.Digest] {
			seen[o.Digest] = true
			p.Roots = append(p.Roots, PinRoot{Digest: o.Digest, Kind: o.Kind, Size: o.Size})
		}
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	b = append(b, '\n')
	key := PinPrefix + name
	err := be.Put(ctx, key, bytes.NewReader(b), int64(len(b)), remote.PutOptions{IfNoneMatch: true})
	if errors.Is(err, remote.ErrExists) {
		// Someone pinned the name meanwhile.
		old, gerr := r.GetPin(ctx, be, name)
		if gerr != nil {
			return nil, gerr
		}
		if old.Target != obj.Digest {
			return nil, pinConflict(old, obj.Digest)
		}
		old.Existing = true
		return old, nil
	}
	if err != nil {
		return nil, fmt.Errorf("write pin %s to %s: %w", name, be.Location(), err)
	}
	if be == r.Backend {
		return p, r.syncKeys(key)
	}
	return p, nil
}

func pinConflict(old *Pin, want digest.Digest) error {
	return fmt.Errorf("%w: %s is pinned to %s, not %s", ErrPinExists, old.Name, old.Target.Short(), want.Short())
}

// CheckClosure checks that every pack holding the trees and chunks of
// roots is on be. The local index must know the roots (after UseRemote,
// it knows the remote's too). The error wraps ErrIncomplete and names
// the missing packs, or wraps ErrNotFound for an object the index lacks.
func (r *Repo) CheckClosure(ctx context.Context, be remote.Backend, roots []Object) error {
	packs := map[digest.Digest]bool{}
	for _, o := range roots {
		if err := r.closurePacks(ctx, &o, packs); err != nil {
			return fmt.Errorf("closure of %s: %w", o.Digest.Short(), err)
		}
	}
	var missing []string
	for p := range packs {
		if _, err := be.Stat(ctx, packKey(p)); errors.Is(err, remote.ErrNotFound) {
			missing = append(missing, p.Short())
		} else if err != nil {
			return fmt.Errorf("pack %s on %s: %w", p.Short(), be.Location(), err)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: %d of %d packs missing on %s (first: %s)", ErrIncomplete, len(missing), len(packs), be.Location(), missing[0])
	}
	return nil
}

// GetPin reads pin name from be (the local store when be is nil).
func (r *Repo) GetPin(ctx context.Context, be remote.Backend, name string) (*Pin, error) {
	if be == nil {
		be = r.Backend
	}
	b, err := remote.ReadAll(ctx, be, PinPrefix+name)
	if errors.Is(err, remote.ErrNotFound) || errors.Is(err, remote.ErrInvalidKey) {
		return nil, fmt.Errorf("pin %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	var p Pin
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("pin %s: unreadable: %w", name, err)
	}
	p.Name = name
	return &p, nil
}

// Pins lists the pins on be (the local store when be is nil), by name.
func (r *Repo) Pins(ctx context.Context, be remote.Backend) ([]*Pin, error) {
	if be == nil {
		be = r.Backend
	}
	var names []string
	err := be.List(ctx, PinPrefix, func(oi remote.ObjectInfo) error {
		names = append(names, strings.TrimPrefix(oi.Key, PinPrefix))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pins on %s: %w", be.Location(), err)
	}
	pins := make([]*Pin, 0, len(names))
	for _, n := range names {
		p, err := r.GetPin(ctx, be, n)
		if errors.Is(err, ErrNotFound) {
			continue // unpinned meanwhile
		}
		if err != nil {
			return nil, err
		}
		pins = append(pins, p)
	}
	return pins, nil
}

// Unpin deletes pin name from be (the local store when be is nil). What
// it kept becomes collectable by GC; nothing else is touched.
func (r *Repo) Unpin(ctx context.Context, be remote.Backend, name string) error {
	if be == nil {
		be = r.Backend
	}
	if !ValidRefName(name) {
		return fmt.Errorf("%q: %w", name, ErrBadRefName)
	}
	err := be.Delete(ctx, PinPrefix+name)
	if errors.Is(err, remote.ErrNotFound) {
		return fmt.Errorf("pin %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("unpin %s on %s: %w", name, be.Location(), err)
	}
	return nil
}
