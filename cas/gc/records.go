package gc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Keys under gc/ on a store (docs/FORMAT.md §10): plans/ID, sweeps/ID,
// keeps/ID and done/ID, each a JSON record; IDs sort by time.
const (
	Prefix      = "gc/"
	PlansPrefix = Prefix + "plans/"
	SweepPrefix = Prefix + "sweeps/"
	KeepPrefix  = Prefix + "keeps/"
	DonePrefix  = Prefix + "done/"
)

// Plan lists the packs a mark found unreferenced and old; the sweep of a
// later collection deletes those still unreferenced.
type Plan struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Packs   []digest.Digest `json:"packs"`
	Bytes   int64           `json:"bytes"`
}

// Keep is a push's note that it relies on condemned packs.
type Keep struct {
	Created time.Time       `json:"created"`
	Packs   []digest.Digest `json:"packs"`
}

// Done records what a sweep deleted, so that every index that cached
// those packs' blobs learns to forget them.
type Done struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Packs   []digest.Digest `json:"packs"`
}

// State is what gc/ holds on a backend.
type State struct {
	Plans []*Plan
	// Sweeping names the plans a sweep has claimed.
	Sweeping map[string]bool
	// Kept are the packs keep markers name; KeepKeys are those markers.
	Kept     map[digest.Digest]bool
	KeepKeys []string
	// Done are the keys of the records of finished sweeps.
	Done []string
}

// ReadState lists gc/ on be and reads its plans and keep markers.
func ReadState(ctx context.Context, be remote.Backend) (*State, error) {
	st := &State{Sweeping: map[string]bool{}, Kept: map[digest.Digest]bool{}}
	var plans, keeps []string
	err := be.List(ctx, Prefix, func(oi remote.ObjectInfo) error {
		switch {
		case strings.HasPrefix(oi.Key, PlansPrefix):
			plans = append(plans, oi.Key)
		case strings.HasPrefix(oi.Key, SweepPrefix):
			st.Sweeping[strings.TrimPrefix(oi.Key, SweepPrefix)] = true
		case strings.HasPrefix(oi.Key, KeepPrefix):
			keeps = append(keeps, oi.Key)
		case strings.HasPrefix(oi.Key, DonePrefix):
			st.Done = append(st.Done, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s on %s: %w", Prefix, be.Location(), err)
	}
	for _, key := range plans {
		var p Plan
		if err := GetJSON(ctx, be, key, &p); errors.Is(err, remote.ErrNotFound) {
			continue // carried out meanwhile
		} else if err != nil {
			return nil, err
		}
		p.ID = strings.TrimPrefix(key, PlansPrefix)
		st.Plans = append(st.Plans, &p)
	}
	for _, key := range keeps {
		var k Keep
		if err := GetJSON(ctx, be, key, &k); errors.Is(err, remote.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		st.KeepKeys = append(st.KeepKeys, key)
		for _, id := range k.Packs {
			st.Kept[id] = true
		}
	}
	return st, nil
}

// NewID returns a record ID that sorts by time now: the time, then
// random hex.
func NewID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// PutJSON writes v at key only if key is absent (remote.ErrExists
// otherwise).
func PutJSON(ctx context.Context, be remote.Backend, key string, v any) error {
	return writeJSON(ctx, be, key, v, remote.PutOptions{IfNoneMatch: true})
}

func writeJSON(ctx context.Context, be remote.Backend, key string, v any, opts remote.PutOptions) error {
	b, _ := json.MarshalIndent(v, "", "  ")
	b = append(b, '\n')
	if err := be.Put(ctx, key, bytes.NewReader(b), int64(len(b)), opts); err != nil {
		return err
	}
	// On local disk, a record is durable before gc acts on it.
	return remote.SyncKeys(be, key)
}

// GetJSON reads the record at key into v; one that is not JSON of its
// kind is a *remote.InvalidError.
func GetJSON(ctx context.Context, be remote.Backend, key string, v any) error {
	b, err := remote.ReadSmall(ctx, be, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &remote.InvalidError{What: "gc record", Name: key + " on " + be.Location(), Reason: "not JSON of its kind: " + err.Error()}
	}
	return nil
}

// SortedDigests returns m's keys in order.
func SortedDigests[V any](m map[digest.Digest]V) []digest.Digest {
	return slices.SortedFunc(maps.Keys(m), func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
}
