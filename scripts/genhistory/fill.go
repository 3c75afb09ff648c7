package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// fillBatch is how many filler entries go to lookup.Write at once: one
// run per shard per batch, about 250 entries (26 KiB) each at 4,096
// shards, and a few hundred MiB of entries in memory.
const fillBatch = 1_000_000

// The filler entries are data blobs of 1 MiB stored raw, at the 32 slots
// of a 32 MiB pack that no bucket holds, recorded by a segment that no
// bucket holds either: a reader that is led to them finds nothing, and a
// push whose blobs they are not (their IDs are random) never is.
var (
	fillerPack    = digest.Of([]byte("cas-genhistory filler pack"))
	fillerSegment = digest.Of([]byte("cas-genhistory filler segment"))
)

const (
	fillerBlob  = 1 << 20
	fillerSlots = 32
)

// fillStats says what fill wrote: the runs of its batches, then the
// compaction of every shard.
type fillStats struct {
	written, compacted lookup.Written
}

// fill grows the lookup index of be by n synthetic entries, batch at a
// time through lookup.Write (a run per shard per batch), then compacts
// every shard once with lookup.Compact, so that the bucket ends as a
// long history would leave it: a run or so per shard. The IDs are drawn
// from seed. be must keep a lookup index already (lookup/format, which
// the first upload of a cas writes): without it readers would ignore the
// runs. conc requests run at once (0: remote.DefaultConnections).
// Progress goes to log.
func fill(ctx context.Context, be remote.Backend, n, batch int, seed uint64, conc int, log io.Writer) (fillStats, error) {
	var st fillStats
	if conc < 1 {
		conc = remote.DefaultConnections
	}
	if _, err := be.Stat(ctx, format.LookupFormatKey); errors.Is(err, remote.ErrNotFound) {
		return st, fmt.Errorf("%s keeps no lookup index (no %s): upload to it first", be.Location(), format.LookupFormatKey)
	} else if err != nil {
		return st, err
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], seed)
	copy(s[8:], "cas-genhistory-filler-1")
	rng := rand.NewChaCha8(s)
	entries := make([]format.RunEntry, 0, min(n, batch))
	for done := 0; done < n; {
		entries = entries[:0]
		for i := done; i < min(n, done+batch); i++ {
			var id digest.Digest
			_, _ = rng.Read(id[:]) // never fails
			entries = append(entries, format.RunEntry{
				ID:      id,
				Kind:    format.RunData,
				Segment: fillerSegment,
				Blob: index.Blob{
					ID:     id,
					Pack:   fillerPack,
					Offset: uint64(i%fillerSlots) * fillerBlob,
					Length: fillerBlob,
					RawLen: fillerBlob,
					Codec:  index.CodecNone,
					Type:   index.TypeData,
				},
			})
		}
		_, w, err := lookup.Write(ctx, be, entries, conc, lookup.Layout{Mark: true})
		if err != nil {
			return st, err
		}
		st.written.Runs += w.Runs
		st.written.Bytes += w.Bytes
		done += len(entries)
		fmt.Fprintf(log, "genhistory: filler: %d of %d entries written (%d runs, %d bytes so far)\n", done, n, st.written.Runs, st.written.Bytes)
	}
	shards := make([]string, 0, 1<<(4*format.LookupShardDigits))
	for i := range cap(shards) {
		shards = append(shards, fmt.Sprintf("%0*x", format.LookupShardDigits, i))
	}
	w, err := lookup.Compact(ctx, be, shards, conc, lookup.Policy{})
	st.compacted = w
	return st, err
}
