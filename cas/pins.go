package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// PinPrefix is the backend key prefix of pins: pin NAME is kept at
// pins/NAME, beside refs/, on the store and on a remote.
const PinPrefix = "pins/"

// Errors about pins.
var (
	// ErrPinExists: the name is pinned already, to another target. A pin
	// never moves; unpin it first (cas unpin --force).
	ErrPinExists = errors.New("pin exists with another target")
	// ErrIncomplete: some object of a pin's closure is missing where the
	// pin would be written, so the pin was not written.
	ErrIncomplete = errors.New("pin closure incomplete")
	// ErrRetained: the pin is under retention (pin --retain) and cannot
	// be removed before it ends.
	ErrRetained = errors.New("pin is retained")
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
	// RetainUntil, where set, is when the S3 Object Lock retention of the
	// pin and its closure ends (pin --retain).
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	// Roots are the objects beside the target that its closure holds: for
	// a manifest, every input, output, patch, package list, log and config
	// it names. GC marks from the target and every root, so it needs no
	// knowledge of manifests.
	Roots []PinRoot `json:"roots,omitempty"`
	// Envelope is a DSSE envelope of an in-toto statement about the pin,
	// where it was signed (package manifest/attest).
	Envelope json.RawMessage `json:"envelope,omitempty"`

	// StoredName is the name the pin's own JSON records, as GetPin read
	// it; Name is the key's. They differ only in an edited pin.
	StoredName string `json:"-"`
	// Existing is set by Pin when the name already pinned this target:
	// nothing was written and the stored pin is returned.
	Existing bool `json:"-"`
	// NotLocal is set by a Pin on a remote when the local store lacks
	// part of the closure, so the pin is not kept there too.
	NotLocal bool `json:"-"`
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
	// Time, if set, is the pin's time (to the millisecond): the time its
	// statement signed. Otherwise it is now.
	Time time.Time
	// Progress, if set, counts what the upload to a remote moves.
	Progress *Progress
	// Retain, if positive, puts the pin, the packs of its closure and the
	// index segments naming them under S3 Object Lock retention for that
	// long: nobody can delete or overwrite them before it ends. The
	// backend must support it (remote.Retainer), else nothing is written.
	Retain time.Duration
}

// Pin writes pin name for obj on be (a remote), or on the local store
// when be is nil. It first makes sure the closure (obj, what it keeps
// (Keeps: for a manifest, every part of the run) and everything below
// them) is whole on be: uploading to a remote whatever
// it lacks, then checking that every pack of the closure is there;
// otherwise it fails with ErrIncomplete and writes nothing.
//
// The write is conditional (If-None-Match): pinning a name to the target
// it already has is a no-op returning the stored pin (Existing set);
// pinning it to another target fails with ErrPinExists.
//
// A pin on a remote is kept in the local store too, as a GC root there,
// when the local store holds the whole closure (NotLocal says when it
// does not); a local pin of the name to another target fails it before
// anything is uploaded.
func (r *Repo) Pin(ctx context.Context, be remote.Backend, name string, obj Object, opts PinOptions) (*Pin, error) {
	if !ValidRefName(name) {
		return nil, fmt.Errorf("%q: %w", name, ErrBadRefName)
	}
	kept, err := r.Closure(ctx, &obj)
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	roots := append([]Object{obj}, kept...)
	packs, err := r.closureOf(ctx, roots)
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	c := pinClosure{roots: roots, packs: packs}
	if be == nil || be == r.Backend {
		return r.pin(ctx, r.Backend, name, obj, c, opts)
	}
	if old, err := r.GetPin(ctx, r.Backend, name); err == nil && old.Target != obj.Digest {
		return nil, pinConflict(old, obj.Digest)
	}
	p, err := r.pin(ctx, be, name, obj, c, opts)
	if err != nil {
		return nil, err
	}
	// The local copy, with the remote pin's signature and message: a GC
	// root here too, and what Pins lists. Where the local store lacks
	// part of the closure, the pin stays on the remote only.
	local := PinOptions{Message: p.Message, Envelope: p.Envelope, Time: p.Time}
	_, err = r.pin(ctx, r.Backend, name, obj, c, local)
	switch {
	case errors.Is(err, ErrIncomplete) || errors.Is(err, ErrNotFound):
		p.NotLocal = true
	case err != nil:
		return nil, fmt.Errorf("pin %s in the local store: %w", name, err)
	}
	return p, nil
}

// pinClosure is what a pin keeps: obj and what it keeps (roots), and the
// packs that hold them.
type pinClosure struct {
	roots []Object
	packs map[digest.Digest]bool
}

// pin writes pin name for obj, whose closure is c, on be alone.
func (r *Repo) pin(ctx context.Context, be remote.Backend, name string, obj Object, c pinClosure, opts PinOptions) (*Pin, error) {
	if opts.Envelope != nil && !json.Valid(opts.Envelope) {
		return nil, fmt.Errorf("pin %s: signature envelope is not JSON", name)
	}
	var lock remote.Retainer
	if opts.Retain > 0 {
		l, ok := be.(remote.Retainer)
		if !ok {
			return nil, fmt.Errorf("pin %s: %s cannot retain objects: %w", name, be.Location(), remote.ErrNoObjectLock)
		}
		if err := l.CheckRetention(ctx); err != nil {
			return nil, fmt.Errorf("pin %s: %w", name, err)
		}
		lock = l
	}
	// A conflicting pin fails before anything is uploaded.
	if old, err := r.GetPin(ctx, be, name); err == nil {
		if old.Target != obj.Digest {
			return nil, pinConflict(old, obj.Digest)
		}
		old.Existing = true
		if lock != nil {
			// Pinning again with --retain extends (never shortens) retention.
			return old, r.retainPin(ctx, lock, be, old, c, r.Now().Add(opts.Retain))
		}
		return old, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if be != r.Backend {
		if _, err := r.Upload(ctx, be, opts.Progress); err != nil {
			return nil, fmt.Errorf("pin %s: upload to %s: %w", name, be.Location(), err)
		}
	}
	onBe, err := r.checkPacks(ctx, be, c.packs)
	if errors.Is(err, ErrIncomplete) && be != r.Backend {
		// be lost packs it was given (a gc on it): compare it whole.
		if _, err := r.uploadAll(ctx, be, opts.Progress); err != nil {
			return nil, fmt.Errorf("pin %s: upload to %s: %w", name, be.Location(), err)
		}
		onBe, err = r.checkPacks(ctx, be, c.packs)
	}
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	// From here on the closure is the packs that hold it on be.
	c.packs = onBe
	if err := r.guardGC(ctx, be, func() (map[digest.Digest]bool, error) { return c.packs, nil }); err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	when := opts.Time
	if when.IsZero() {
		when = r.Now()
	}
	p := &Pin{Name: name, StoredName: name, Target: obj.Digest, Kind: obj.Kind, Size: obj.Size, File: obj.Name, Type: obj.Type,
		Message: opts.Message, Time: when.UTC().Truncate(time.Millisecond), Envelope: opts.Envelope}
	var until time.Time
	if lock != nil {
		// Closure first: a retained pin never names unretained data.
		until = RetainUntil(when, opts.Retain)
		if err := r.retainObjects(ctx, lock, be, c.packs, until); err != nil {
			return nil, fmt.Errorf("pin %s: %w", name, err)
		}
		p.RetainUntil = &until
	}
	seen := map[digest.Digest]bool{obj.Digest: true}
	for _, o := range c.roots[1:] {
		if !seen[o.Digest] {
			seen[o.Digest] = true
			p.Roots = append(p.Roots, PinRoot{Digest: o.Digest, Kind: o.Kind, Size: o.Size})
		}
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	b = append(b, '\n')
	key := PinPrefix + name
	err = be.Put(ctx, key, bytes.NewReader(b), int64(len(b)), remote.PutOptions{IfNoneMatch: true})
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
	if lock != nil {
		if err := lock.Retain(ctx, key, until); err != nil {
			return nil, fmt.Errorf("pin %s: retain the pin: %w", name, err)
		}
	}
	if be == r.Backend {
		return p, r.syncKeys(key)
	}
	return p, nil
}

// RetainUntil is the end of a retention for d from start, as a pin
// records it: in whole seconds, rounded up past start+d.
func RetainUntil(start time.Time, d time.Duration) time.Time {
	return start.Add(d).UTC().Truncate(time.Second).Add(time.Second)
}

func pinConflict(old *Pin, want digest.Digest) error {
	return &PinConflictError{Name: old.Name, Pinned: old.Target, Want: want}
}

// PinConflictError says that a name is pinned to another target than the
// one asked for. It wraps ErrPinExists.
type PinConflictError struct {
	Name         string
	Pinned, Want digest.Digest
}

func (e *PinConflictError) Error() string {
	return fmt.Sprintf("pin exists with another target: %s is pinned to %s, not %s", e.Name, e.Pinned.Short(), e.Want.Short())
}

func (e *PinConflictError) Unwrap() error { return ErrPinExists }

// CheckClosure checks that every pack holding the trees and chunks of
// roots is on be. The local index must know the roots (after UseRemote,
// it knows the remote's too). The error wraps ErrIncomplete and names
// the missing packs, or wraps ErrNotFound for an object the index lacks.
func (r *Repo) CheckClosure(ctx context.Context, be remote.Backend, roots []Object) error {
	_, err := r.checkClosure(ctx, be, roots)
	return err
}

// checkClosure is CheckClosure, returning the packs that hold the
// closure on be (checkPacks).
func (r *Repo) checkClosure(ctx context.Context, be remote.Backend, roots []Object) (map[digest.Digest]bool, error) {
	packs, err := r.closureOf(ctx, roots)
	if err != nil {
		return nil, err
	}
	return r.checkPacks(ctx, be, packs)
}

// closureOf returns the packs holding the trees and chunks of roots, as
// the local index places them.
func (r *Repo) closureOf(ctx context.Context, roots []Object) (map[digest.Digest]bool, error) {
	packs := map[digest.Digest]bool{}
	for _, o := range roots {
		if err := r.closurePacks(ctx, &o, packs); err != nil {
			return nil, fmt.Errorf("closure of %s: %w", o.Digest.Short(), err)
		}
	}
	return packs, nil
}

// checkPacks checks that be holds the data of every one of packs (local
// pack names) and returns the packs that hold it there (packsOn): the
// same, or where be holds the blobs of one in packs of its own, those.
// The error wraps ErrIncomplete and names the missing ones.
func (r *Repo) checkPacks(ctx context.Context, be remote.Backend, packs map[digest.Digest]bool) (map[digest.Digest]bool, error) {
	on, missing, err := r.packsOn(ctx, be, packs)
	if err != nil || len(missing) == 0 {
		return on, err
	}
	return nil, fmt.Errorf("%w: %d of %d packs missing on %s (first: %s)", ErrIncomplete, len(missing), len(packs), be.Location(), missing[0].Short())
}

// missingPacks returns, in order, those of packs that be lacks, asking
// about several at once.
func (r *Repo) missingPacks(ctx context.Context, be remote.Backend, packs map[digest.Digest]bool) ([]digest.Digest, error) {
	var (
		mu      sync.Mutex
		missing []digest.Digest
	)
	err := par.ForEach(ctx, slices.Collect(maps.Keys(packs)), r.transfers(), func(ctx context.Context, p digest.Digest) error {
		if _, err := be.Stat(ctx, format.PackKey(p)); errors.Is(err, remote.ErrNotFound) {
			mu.Lock()
			missing = append(missing, p)
			mu.Unlock()
		} else if err != nil {
			return fmt.Errorf("pack %s on %s: %w", p.Short(), be.Location(), err)
		}
		return nil
	})
	slices.SortFunc(missing, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	return missing, err
}

// retainPin puts an existing pin's closure and the pin itself under
// retention until until (extending, never shortening).
func (r *Repo) retainPin(ctx context.Context, lock remote.Retainer, be remote.Backend, p *Pin, c pinClosure, until time.Time) error {
	onBe, err := r.checkPacks(ctx, be, c.packs)
	if err != nil {
		return fmt.Errorf("pin %s: %w", p.Name, err)
	}
	c.packs = onBe
	until = until.UTC().Truncate(time.Second).Add(time.Second)
	if err := r.retainObjects(ctx, lock, be, c.packs, until); err != nil {
		return fmt.Errorf("pin %s: %w", p.Name, err)
	}
	if err := lock.Retain(ctx, PinPrefix+p.Name, until); err != nil {
		return fmt.Errorf("pin %s: retain the pin: %w", p.Name, err)
	}
	if p.RetainUntil == nil || p.RetainUntil.Before(until) {
		p.RetainUntil = &until
	}
	return nil
}

// retainObjects retains packs and the index segments that name them:
// without its segments a retained multi-chunk file could not be put
// back together.
func (r *Repo) retainObjects(ctx context.Context, lock remote.Retainer, be remote.Backend, packs map[digest.Digest]bool, until time.Time) error {
	var keys []string
	for p := range packs {
		keys = append(keys, format.PackKey(p))
	}
	var segs []string
	err := be.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error { segs = append(segs, oi.Key); return nil })
	if err != nil {
		return err
	}
	for _, key := range segs {
		names := false
		err := scanSegment(ctx, be, key, format.SegmentVisitor{Blob: func(b index.Blob) error {
			if packs[b.Pack] {
				names = true
				return errStop
			}
			return nil
		}})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if names {
			keys = append(keys, key)
		}
	}
	return par.ForEach(ctx, keys, r.transfers(), func(ctx context.Context, key string) error {
		if err := lock.Retain(ctx, key, until); err != nil {
			return fmt.Errorf("retain %s: %w", key, err)
		}
		return nil
	})
}

// RetainedError says until when a pin is retained; it wraps ErrRetained.
type RetainedError struct {
	Name  string
	Until time.Time
}

func (e *RetainedError) Error() string {
	return fmt.Sprintf("pin %s is retained until %s", e.Name, e.Until.UTC().Format(time.RFC3339))
}

func (e *RetainedError) Unwrap() error { return ErrRetained }

// GetPin reads pin name from be (the local store when be is nil).
func (r *Repo) GetPin(ctx context.Context, be remote.Backend, name string) (*Pin, error) {
	if be == nil {
		be = r.Backend
	}
	b, err := remote.ReadSmall(ctx, be, PinPrefix+name)
	if errors.Is(err, remote.ErrNotFound) || errors.Is(err, remote.ErrInvalidKey) {
		return nil, fmt.Errorf("pin %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	var p Pin
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, &InvalidError{What: "pin", Name: name, Reason: "not a pin's JSON: " + err.Error()}
	}
	p.StoredName, p.Name = p.Name, name
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Pins lists the pins on be (the local store when be is nil), by name.
// Pins that cannot be read or fail validation are left out and reported
// together in a *PartialError, returned beside the others.
func (r *Repo) Pins(ctx context.Context, be remote.Backend) ([]*Pin, error) {
	if be == nil {
		be = r.Backend
	}
	pins, err := listNamed(ctx, be, PinPrefix, "pin", func(name string) (*Pin, error) { return r.GetPin(ctx, be, name) })
	var partial *PartialError
	if err != nil && !errors.As(err, &partial) {
		return nil, fmt.Errorf("list pins on %s: %w", be.Location(), err)
	}
	return pins, err
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
	until, err := remote.RetainedUntil(ctx, be, PinPrefix+name)
	if errors.Is(err, remote.ErrNotFound) {
		return fmt.Errorf("pin %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("unpin %s on %s: %w", name, be.Location(), err)
	}
	if until.After(r.Now()) {
		return &RetainedError{Name: name, Until: until}
	}
	err = be.Delete(ctx, PinPrefix+name)
	if errors.Is(err, remote.ErrNotFound) {
		return fmt.Errorf("pin %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("unpin %s on %s: %w", name, be.Location(), err)
	}
	return nil
}
