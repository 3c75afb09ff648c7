package cas

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// pendingDir, in a store's directory (beside its config, not in the
// store's backend), holds the uploads the store owes its remotes: what
// was stored locally while the remote it was meant for could not be
// reached. One JSON file each (a PendingUpload), so that two commands
// never edit the same file. docs/FORMAT.md describes them.
const pendingDir = "pending"

// PendingUpload is one upload a store owes a remote: publish Object there
// (Publish) and, if Ref is set, point the remote's ref Ref at it. Until it
// is cleared (ClearPending), gc on the local store keeps Object as it
// keeps a ref's target, with the closure of a manifest.
type PendingUpload struct {
	Remote string    `json:"remote"`
	Ref    string    `json:"ref,omitempty"`
	Object Object    `json:"object"`
	Time   time.Time `json:"time"` // when it was recorded, UTC, in milliseconds

	file string // its file's name in pendingDir
}

// check validates an entry, written or read back: what it names is used
// to set a ref on a remote, and anything may have edited the file.
func (p *PendingUpload) check() error {
	o := p.Object
	switch {
	case !ValidRefName(p.Remote) || strings.Contains(p.Remote, "/"):
		return fmt.Errorf("remote %q: %w", p.Remote, ErrBadRefName)
	case p.Ref != "" && !ValidRefName(p.Ref):
		return fmt.Errorf("ref %q: %w", p.Ref, ErrBadRefName)
	}
	if why := checkTarget(o.Digest, o.Kind, o.Size, o.Name, o.Type); why != "" {
		return &InvalidError{What: "pending upload", Name: p.file, Reason: why}
	}
	return nil
}

// pendingFile names the file of the upload of d (named ref) owed to the
// remote rname: the same upload owed twice is one file.
func pendingFile(rname, ref string, d digest.Digest) string {
	key := digest.Of([]byte(rname + "\x00" + ref + "\x00" + d.String()))
	return key.Hex()[:32] + ".json"
}

// RecordPending writes down, durably, that obj (named ref, if any) is owed
// to the remote named rname. The same upload owed twice is one entry, of
// the later time. From then on gc keeps obj; a gc planned before is told
// (GuardGC), as for a ref.
func (r *Repo) RecordPending(ctx context.Context, rname, ref string, obj Object) error {
	p := &PendingUpload{Remote: rname, Ref: ref, Object: obj, Time: r.Now().UTC().Truncate(time.Millisecond)}
	p.file = pendingFile(rname, ref, obj.Digest)
	if err := p.check(); err != nil {
		return fmt.Errorf("record upload owed to %s: %w", rname, err)
	}
	// A sweep already planned must not take what the entry will keep.
	err := r.guardGC(ctx, nil, func() (map[digest.Digest]bool, error) {
		objs, _, err := r.withKept(ctx, &obj)
		if err != nil {
			return nil, err
		}
		return r.closureOf(ctx, objs)
	})
	if err != nil {
		return fmt.Errorf("record upload owed to %s: %w", rname, err)
	}
	return r.writePending(p)
}

// writePending writes p to its file as the store writes its config
// (replaceJSON), so that a crash leaves the entry whole or absent.
func (r *Repo) writePending(p *PendingUpload) error {
	dir := filepath.Join(r.Dir, pendingDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := remote.SyncDir(r.Dir); err != nil {
			return err
		}
	}
	// Aside under a name not ending in .json: a reader never takes it
	// for an entry.
	return replaceJSON(dir, p.file, ".pending-*", 0o644, p)
}

// PendingUploads returns the uploads owed to the remote rname ("" for
// every remote), oldest first. An entry that cannot be read or fails its
// checks is reported to Repo.Warn and left where it is.
func (r *Repo) PendingUploads(rname string) ([]*PendingUpload, error) {
	ps, bad, err := r.readPending()
	if err != nil {
		return nil, err
	}
	for _, err := range bad {
		r.warn(err)
	}
	return slices.DeleteFunc(ps, func(p *PendingUpload) bool { return rname != "" && p.Remote != rname }), nil
}

// readPending reads every entry of pendingDir, oldest first, and says
// which could not be read.
func (r *Repo) readPending() (ps []*PendingUpload, bad []error, err error) {
	dir := filepath.Join(r.Dir, pendingDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read uploads owed: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		p := &PendingUpload{}
		if err == nil {
			err = json.Unmarshal(b, p)
		}
		p.file = name
		if err == nil {
			err = p.check()
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("pending upload %s: %w", filepath.Join(dir, name), err))
			continue
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *PendingUpload) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.file, b.file))
	})
	return ps, bad, nil
}

// ClearPending removes p, an upload done (or given up): gc no longer
// keeps its object for it. An entry already gone is no error.
func (r *Repo) ClearPending(p *PendingUpload) error {
	dir := filepath.Join(r.Dir, pendingDir)
	if err := os.Remove(filepath.Join(dir, p.file)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("clear upload owed to %s: %w", p.Remote, err)
	}
	return remote.SyncDir(dir)
}

// RenamePending moves the uploads owed to the remote old to the remote
// new, keeping their times (for cas remote rename). Each is written under
// its new name before the old entry is removed: a crash between the two
// leaves it owed to both names, never to neither.
func (r *Repo) RenamePending(old, new string) error {
	ps, _, err := r.readPending() // one that cannot be read stays as it is
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Remote != old {
			continue
		}
		q := &PendingUpload{Remote: new, Ref: p.Ref, Object: p.Object, Time: p.Time, file: pendingFile(new, p.Ref, p.Object.Digest)}
		if err := q.check(); err != nil {
			return fmt.Errorf("rename uploads owed to %s: %w", old, err)
		}
		if err := r.writePending(q); err != nil {
			return fmt.Errorf("rename uploads owed to %s: %w", old, err)
		}
		if err := r.ClearPending(p); err != nil {
			return err
		}
	}
	return nil
}

// pendingRoots returns what the store's pending uploads keep from gc on
// its own backend. An entry that cannot be read stops gc: what it keeps
// cannot be told.
func (r *Repo) pendingRoots() ([]Object, error) {
	ps, bad, err := r.readPending()
	if err == nil && len(bad) > 0 {
		err = bad[0]
	}
	if err != nil {
		return nil, fmt.Errorf("gc: %w: gc stops, as it cannot tell what the uploads owed to remotes keep (an entry not owed any more can be removed)", err)
	}
	roots := make([]Object, len(ps))
	for i, p := range ps {
		roots[i] = p.Object
	}
	return roots, nil
}
