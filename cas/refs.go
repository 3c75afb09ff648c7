package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/manifest/schema"
	"github.com/cas-ml/cas/remote"
)

// Ref is a named pointer to a stored file or tree, kept at refs/<name>.
type Ref struct {
	Name   string        `json:"name"`
	Target digest.Digest `json:"target"`
	Kind   Kind          `json:"kind"`
	Size   int64         `json:"size"`
	// File is the base name of a single pushed file.
	File string `json:"file,omitempty"`
	// Type says what a file holds when cas knows: "manifest" for an
	// experiment manifest.
	Type string    `json:"type,omitempty"`
	Time time.Time `json:"time"`
	// Previous holds earlier targets, newest first, so that moving a ref
	// never loses what it pointed at.
	Previous []digest.Digest `json:"previous,omitempty"`
}

const maxRefHistory = 50

// ErrBadRefName reports a ref name cas does not accept.
var ErrBadRefName = errors.New("invalid ref name: use letters, digits and . _ - / (no leading dot, no .., at most 200 characters)")

var refNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$`)

// ValidRefName reports whether name can name a ref. Names that could be
// read as a digest or hex prefix are refused, so resolving stays unambiguous.
func ValidRefName(name string) bool {
	return len(name) <= 200 && refNameRE.MatchString(name) && !strings.Contains(name, "..") &&
		!digest.IsHexPrefix(name) && !strings.HasSuffix(name, ".lock")
}

// SetRef points name at target, keeping the old target in its history.
// Concurrent writers never lose an update: each write is conditional on
// the version it read.
func (r *Repo) SetRef(ctx context.Context, name string, obj Object) (*Ref, error) {
	return r.SetRefOn(ctx, r.Backend, name, obj)
}

// SetRefOn sets a ref on another backend (a remote), in the same way.
func (r *Repo) SetRefOn(ctx context.Context, be remote.Backend, name string, obj Object) (*Ref, error) {
	target := obj.Digest
	if !ValidRefName(name) {
		return nil, fmt.Errorf("%q: %w", name, ErrBadRefName)
	}
	// What a ref says of its target is checked as a ref read back is
	// (Ref.validate), so no caller can write one that readers refuse.
	if why := checkTarget(obj.Digest, obj.Kind, obj.Size, obj.Name, obj.Type); why != "" {
		return nil, fmt.Errorf("set ref %s: %w", name, &InvalidError{What: "ref", Name: name, Reason: why})
	}
	// A run's ref keeps the run's closure (Keeps) beside the manifest.
	objs, kept, err := r.withKept(ctx, &obj)
	if err != nil {
		return nil, fmt.Errorf("set ref %s: %w", name, err)
	}
	for _, k := range kept {
		if k.Err != nil && be != r.Backend {
			return nil, fmt.Errorf("set ref %s on %s: %s %s: %w", name, be.Location(), k.Part, k.Part.Digest.Short(), k.Err)
		}
	}
	// The closure's packs as be holds them, found once: by the guard if
	// it needs them, else by the check on a remote. A ref on a remote
	// never names data the remote lacks: the data of every pack of the
	// closure must be there (Upload put it there first, GuardGC again
	// what a gc took), in that pack or in packs be's lookup index names.
	var local, packs map[digest.Digest]bool
	localClosure := func() (map[digest.Digest]bool, error) {
		if local == nil {
			p, err := r.closureOf(ctx, objs)
			if err != nil {
				return nil, err
			}
			local = p
		}
		return local, nil
	}
	closure := func() (map[digest.Digest]bool, error) {
		if packs == nil {
			p, err := localClosure()
			if err != nil || be == r.Backend {
				return p, err
			}
			// Those be lacks stay in: the guard uploads again what a
			// sweep took.
			on, missing, err := r.packsOn(ctx, be, p)
			if err != nil {
				return nil, err
			}
			for _, m := range missing {
				on[m] = true
			}
			packs = on
		}
		return packs, nil
	}
	// A GC on be must not take what the ref is about to name.
	if err := r.guardGC(ctx, be, closure); err != nil {
		return nil, fmt.Errorf("set ref %s: %w", name, err)
	}
	if be != r.Backend {
		p, err := localClosure()
		if err == nil {
			_, err = r.checkPacks(ctx, be, p)
		}
		if err != nil {
			return nil, fmt.Errorf("set ref %s on %s: %w", name, be.Location(), err)
		}
	}
	if be == r.Backend {
		if err := r.RefNameFree(name); err != nil {
			return nil, err
		}
	}
	key := refPrefix + name
	for attempt := 0; ; attempt++ {
		ref := &Ref{Name: name, Target: target, Kind: obj.Kind, Size: obj.Size, File: obj.Name, Type: obj.Type, Time: r.Now().UTC().Truncate(time.Millisecond)}
		opts := remote.PutOptions{IfNoneMatch: true}
		old, info, err := readRef(ctx, be, name)
		switch {
		case err == nil:
			opts = remote.PutOptions{IfMatch: info.ETag}
			if old.Target != target {
				ref.Previous = append([]digest.Digest{old.Target}, old.Previous...)
			} else {
				ref.Previous = old.Previous
			}
			if len(ref.Previous) > maxRefHistory {
				ref.Previous = ref.Previous[:maxRefHistory]
			}
		case errors.Is(err, ErrNotFound):
		default:
			return nil, err
		}
		b, _ := json.MarshalIndent(ref, "", "  ")
		b = append(b, '\n')
		err = be.Put(ctx, key, bytes.NewReader(b), int64(len(b)), opts)
		if err == nil {
			if be == r.Backend {
				return ref, r.syncKeys(key)
			}
			return ref, nil
		}
		if (errors.Is(err, remote.ErrExists) || errors.Is(err, remote.ErrPrecondition) || errors.Is(err, remote.ErrNotFound)) && attempt < 20 {
			continue // someone else moved it: read again and retry
		}
		return nil, fmt.Errorf("set ref %s: %w", name, err)
	}
}

// ErrRefClash: a ref name that is also the folder of other refs, or lies
// below a ref (grp and grp/two), as in git.
var ErrRefClash = errors.New("a name cannot be both a ref and a folder of refs")

// RefNameFree checks that ref name neither lies below a ref of the store
// (grp/two where grp is one) nor is a folder of its refs: the store keeps
// refs as files, and either would be a file where a directory is.
func (r *Repo) RefNameFree(name string) error {
	p, ok := r.Backend.(pather)
	if !ok {
		return nil
	}
	for i := strings.IndexByte(name, '/'); i >= 0; i = nextSlash(name, i) {
		path, err := p.Path(refPrefix + name[:i])
		if err != nil {
			return nil
		}
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			return fmt.Errorf("ref %s: %s is a ref, so no ref can be named below it (`cas refs rm %s` frees it): %w", name, name[:i], name[:i], ErrRefClash)
		}
	}
	path, err := p.Path(refPrefix + name)
	if err != nil {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("ref %s: refs are named below %s/ (`cas refs` lists them): %w", name, name, ErrRefClash)
	}
	return nil
}

// nextSlash is the index of the next '/' in name after i, or -1.
func nextSlash(name string, i int) int {
	j := strings.IndexByte(name[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// DeleteRef removes ref name from be (the local store when be is nil).
// What it and its history pointed at becomes collectable by GC unless
// something else keeps it.
func (r *Repo) DeleteRef(ctx context.Context, be remote.Backend, name string) error {
	if be == nil {
		be = r.Backend
	}
	if !ValidRefName(name) {
		return fmt.Errorf("%q: %w", name, ErrBadRefName)
	}
	err := be.Delete(ctx, refPrefix+name)
	if errors.Is(err, remote.ErrNotFound) {
		return fmt.Errorf("ref %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete ref %s on %s: %w", name, be.Location(), err)
	}
	return nil
}

// readRef reads ref name and the version of it read (its ETag, for a
// conditional write over it): a Stat, then the ref (getRef).
func readRef(ctx context.Context, be remote.Backend, name string) (*Ref, remote.ObjectInfo, error) {
	info, err := be.Stat(ctx, refPrefix+name)
	if err != nil {
		if errors.Is(err, remote.ErrNotFound) {
			return nil, info, fmt.Errorf("ref %s: %w", name, ErrNotFound)
		}
		return nil, info, err
	}
	ref, err := getRef(ctx, be, name)
	return ref, info, err
}

// getRef reads and validates ref name, in one request.
func getRef(ctx context.Context, be remote.Backend, name string) (*Ref, error) {
	b, err := remote.ReadSmall(ctx, be, refPrefix+name)
	if err != nil {
		if errors.Is(err, remote.ErrNotFound) {
			return nil, fmt.Errorf("ref %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("ref %s: %w", name, err)
	}
	var ref Ref
	if err := json.Unmarshal(b, &ref); err != nil {
		return nil, &InvalidError{What: "ref", Name: name, Reason: "not a ref's JSON: " + err.Error()}
	}
	ref.Name = name
	if err := ref.validate(); err != nil {
		return nil, err
	}
	return &ref, nil
}

// GetRef reads one ref.
// A ref the local store lacks is looked up on the remote, if there is one.
func (r *Repo) GetRef(ctx context.Context, name string) (*Ref, error) {
	ref, err := getRef(ctx, r.Backend, name)
	if errors.Is(err, ErrNotFound) && r.remote != nil {
		ref, err = getRef(ctx, r.remote, name)
	}
	return ref, err
}

// Refs lists all refs by name. Refs that cannot be read or fail
// validation are left out and reported together in a *PartialError,
// returned beside the others.
func (r *Repo) Refs(ctx context.Context) ([]*Ref, error) {
	return r.RefsOn(ctx, nil)
}

// RefsOn lists the refs on be (the local store when be is nil), as Refs
// does: those that cannot be read are left out and reported together in
// a *PartialError. A remote's refs get the validation of the local ones.
func (r *Repo) RefsOn(ctx context.Context, be remote.Backend) ([]*Ref, error) {
	if be == nil {
		be = r.Backend
	}
	return listNamed(ctx, be, refPrefix, "ref", func(name string) (*Ref, error) {
		return getRef(ctx, be, name)
	})
}

// GetRefOn reads ref name on be (the local store when be is nil) only.
func (r *Repo) GetRefOn(ctx context.Context, be remote.Backend, name string) (*Ref, error) {
	if be == nil {
		be = r.Backend
	}
	if !ValidRefName(name) {
		return nil, fmt.Errorf("%q: %w", name, ErrBadRefName)
	}
	return getRef(ctx, be, name)
}

// Object is what the ref names.
func (ref *Ref) Object() Object {
	return Object{Digest: ref.Target, Kind: ref.Kind, Size: ref.Size, Name: ref.File, Type: ref.Type}
}

// Object is a resolved name: a stored file or tree.
type Object struct {
	Digest digest.Digest `json:"digest"`
	Kind   Kind          `json:"kind"`
	Size   int64         `json:"size"`
	// Name is the last path element, for a file named by REF:path or a
	// ref to a single file; empty otherwise.
	Name string `json:"name,omitempty"`
	// Type is "manifest" for a manifest named by a ref; empty otherwise.
	Type string `json:"type,omitempty"`
}

// Resolve turns "REF" or "REF:path/inside" into an object. REF is a full
// digest, a unique hex prefix of at least 8 characters, or a ref name.
func (r *Repo) Resolve(ctx context.Context, spec string) (*Object, error) {
	refPart, sub := splitSpec(spec)
	obj, err := r.resolveRef(ctx, refPart)
	if err != nil {
		return nil, err
	}
	if sub == "" {
		return obj, nil
	}
	return r.Lookup(ctx, obj, sub)
}

// SplitSpec splits "REF:path" into REF and path (without slashes at its
// ends), at the colon after the optional "blake3:".
func SplitSpec(spec string) (string, string) { return splitSpec(spec) }

// splitSpec splits "REF:path" at the colon after the optional "blake3:".
func splitSpec(spec string) (string, string) {
	rest := strings.TrimPrefix(spec, digest.Prefix)
	head := spec[:len(spec)-len(rest)]
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		return head + rest[:i], strings.Trim(rest[i+1:], "/")
	}
	return spec, ""
}

func (r *Repo) resolveRef(ctx context.Context, s string) (*Object, error) {
	if s == "" {
		return nil, fmt.Errorf("empty reference: %w", ErrNotFound)
	}
	if d, err := digest.Parse(s); err == nil {
		return r.objectOf(ctx, d, "")
	}
	if ValidRefName(s) {
		if name, ok := strings.CutPrefix(s, PinPrefix); ok {
			return r.resolvePin(ctx, name)
		}
		ref, err := r.GetRef(ctx, s)
		if errors.Is(err, ErrNotFound) {
			// A bare pin name works where no ref has it, and then a bare
			// run name (runs/NAME). A pin of the name that cannot be read
			// is the error: the run is not what was meant.
			obj, perr := r.resolvePin(ctx, s)
			if perr == nil {
				return obj, nil
			}
			if !errors.Is(perr, ErrNotFound) {
				return nil, perr
			}
			if name := schema.RefPrefix + s; ValidRefName(name) {
				run, rerr := r.GetRef(ctx, name)
				switch {
				case rerr == nil:
					ref, err = run, nil
				case !errors.Is(rerr, ErrNotFound):
					return nil, rerr // a run ref that cannot be read is that error, not "not found"
				}
			}
		}
		if err != nil {
			return nil, err
		}
		obj := &Object{Digest: ref.Target, Kind: ref.Kind, Size: ref.Size, Name: ref.File, Type: ref.Type}
		return obj, nil
	}
	if digest.IsHexPrefix(s) {
		d, err := r.expandPrefix(ctx, strings.TrimPrefix(s, digest.Prefix))
		if err != nil {
			return nil, err
		}
		return r.objectOf(ctx, d, "")
	}
	if strings.HasPrefix(s, digest.Prefix) {
		return nil, fmt.Errorf("%q: %w", s, digest.ErrSyntax)
	}
	return nil, fmt.Errorf("%q is neither a digest nor a ref name: %w", s, ErrNotFound)
}

// resolvePin reads pin name from the store, else from its remote.
func (r *Repo) resolvePin(ctx context.Context, name string) (*Object, error) {
	p, err := r.GetPin(ctx, nil, name)
	if errors.Is(err, ErrNotFound) && r.remote != nil {
		p, err = r.GetPin(ctx, r.remote, name)
	}
	if err != nil {
		return nil, err
	}
	obj := p.Object()
	return &obj, nil
}

// objectOf describes a stored digest: a tree, or a file.
func (r *Repo) objectOf(ctx context.Context, d digest.Digest, name string) (*Object, error) {
	if b, ok, err := r.locate(ctx, d); err != nil {
		return nil, err
	} else if ok && b.Type == index.TypeTree {
		t, err := r.ReadTree(ctx, d)
		if err != nil {
			return nil, err
		}
		return &Object{Digest: d, Kind: KindDir, Size: t.Size(), Name: name}, nil
	} else if ok {
		if b.RawLen == 0 && d != emptyFile {
			// No chunk is empty, and a file of no bytes has no chunk: an
			// index that says otherwise would make d a file of 0 bytes
			// that pull takes nothing of.
			return nil, &CorruptError{What: "index entry", ID: d, Pack: b.Pack}
		}
		return &Object{Digest: d, Kind: KindFile, Size: int64(b.RawLen), Name: name}, nil
	}
	chunks, ok, err := r.chunksOf(ctx, d)
	if err != nil {
		return nil, err
	}
	if ok {
		var size int64
		if err := r.lookUpMissing(ctx, chunks); err != nil {
			return nil, err
		}
		for _, c := range chunks {
			b, ok, err := r.locate(ctx, c)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("file %s: chunk %s: %w", d.Short(), c.Short(), ErrDataNotFound)
			}
			size += int64(b.RawLen)
		}
		if size == 0 && d != emptyFile {
			return nil, &CorruptError{What: "index entry", ID: d}
		}
		return &Object{Digest: d, Kind: KindFile, Size: size, Name: name}, nil
	}
	if d == emptyFile {
		return &Object{Digest: d, Kind: KindFile, Name: name}, nil
	}
	return nil, fmt.Errorf("%s: %w", d, ErrNotFound)
}

// expandPrefix finds the unique stored tree or file whose hex digest
// starts with prefix. Ref targets count too.
func (r *Repo) expandPrefix(ctx context.Context, prefix string) (digest.Digest, error) {
	found := map[digest.Digest]bool{}
	err := r.Index.Blobs(func(b index.Blob) error {
		if strings.HasPrefix(b.ID.Hex(), prefix) {
			found[b.ID] = true
		}
		return nil
	})
	if err != nil {
		return digest.Zero, err
	}
	err = r.Index.Files(func(f digest.Digest) error {
		if strings.HasPrefix(f.Hex(), prefix) {
			found[f] = true
		}
		return nil
	})
	if err != nil {
		return digest.Zero, err
	}
	refs, err := r.Refs(ctx)
	var partial *PartialError
	if err != nil && !errors.As(err, &partial) {
		return digest.Zero, err
	}
	for _, ref := range refs {
		if strings.HasPrefix(ref.Target.Hex(), prefix) {
			found[ref.Target] = true
		}
	}
	switch len(found) {
	case 0:
		return digest.Zero, fmt.Errorf("no object starts with %s: %w", prefix, ErrNotFound)
	case 1:
		for d := range found {
			return d, nil
		}
	}
	return digest.Zero, fmt.Errorf("%w: %s matches %d objects; give more characters", ErrAmbiguous, prefix, len(found))
}

// ReadTree reads and parses a stored tree. The tree read last is kept:
// a path looked up below an object just resolved (for its size) reads
// the first tree once, which from a remote is one request less. Callers
// must not change the tree.
func (r *Repo) ReadTree(ctx context.Context, d digest.Digest) (*Tree, error) {
	r.lastTree.mu.Lock()
	t := r.lastTree.t
	hit := t != nil && r.lastTree.d == d
	r.lastTree.mu.Unlock()
	if hit {
		return t, nil
	}
	t, err := r.readTree(ctx, d)
	if err == nil {
		r.lastTree.mu.Lock()
		r.lastTree.d, r.lastTree.t = d, t
		r.lastTree.mu.Unlock()
	}
	return t, err
}

func (r *Repo) readTree(ctx context.Context, d digest.Digest) (*Tree, error) {
	b, ok, err := r.locate(ctx, d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("tree %s: %w", d.Short(), ErrDataNotFound)
	}
	raw, err := r.readBlob(ctx, b, nil)
	if err != nil {
		return nil, err
	}
	t, err := ParseTree(raw)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", d.Short(), err)
	}
	return t, nil
}

// Lookup follows a slash-separated path below a tree object.
func (r *Repo) Lookup(ctx context.Context, obj *Object, path string) (*Object, error) {
	cur := obj
	for _, name := range strings.Split(path, "/") {
		if name == "" || name == "." {
			continue
		}
		if cur.Kind != KindDir {
			return nil, fmt.Errorf("%s: %w", path, ErrNotTree)
		}
		t, err := r.ReadTree(ctx, cur.Digest)
		if err != nil {
			return nil, err
		}
		e, ok := t.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("%s: %w", path, ErrNoPath)
		}
		cur = &Object{Digest: e.Digest, Kind: e.Kind, Size: e.Size, Name: name}
	}
	return cur, nil
}

// Names lists the ref and pin names of the store at dir (a .cas
// directory) without opening it: no index, no lock, nothing validated
// but the names. It is for shell completion, which must answer at once
// even while another command holds the store.
func Names(ctx context.Context, dir string) (refs, pins []string, err error) {
	be, err := remote.NewLocal(filepath.Join(dir, storeDir))
	if err != nil {
		return nil, nil, err
	}
	list := func(prefix string) ([]string, error) {
		var names []string
		err := be.List(ctx, prefix, func(oi remote.ObjectInfo) error {
			if n := strings.TrimPrefix(oi.Key, prefix); ValidRefName(n) {
				names = append(names, n)
			}
			return nil
		})
		return names, err
	}
	if refs, err = list(refPrefix); err != nil {
		return nil, nil, err
	}
	if pins, err = list(PinPrefix); err != nil {
		return nil, nil, err
	}
	return refs, pins, nil
}
