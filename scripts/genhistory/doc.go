// Command genhistory gives a bucket a long history quickly: H small pushes,
// each with a ref, written through the library's own writers (cas.Repo's
// Push, Upload and SetRefOn) rather than by running `cas push` H times.
// scripts/bench-scale.sh uses it to measure what a fresh machine pays to
// restore one file from a bucket as its history grows.
//
//	genhistory -store DIR/.cas [-remote origin] -pushes H [-start S] [-list FILE]
//	genhistory -store DIR/.cas [-remote origin] -filler N
//
// -store names a cas store (`cas init`) whose remote (`cas remote add`)
// receives the history; credentials come from the AWS variables, as for
// cas itself. Push i stores a directory of four generated files (a 16 KiB
// data/sample.bin whose bytes depend on -seed and i, and three small text
// files) and names it with the ref push-NNNNN, where NNNNN is i.
//
// The pushes are made -batch at a time in a scratch store of their own, as
// by one machine of a lab sharing the bucket; then what the bucket lacks
// goes up (Repo.Upload: packs, then index segments) and the batch's refs
// are set on it (Repo.SetRefOn): the order Repo.Publish keeps. The bucket
// ends up holding what H runs of `cas push --to` leave there, a pack, an
// index segment and a ref per push, but in minutes rather than hours: a
// push lists every pack of its local store and Publish lists the whole
// bucket, so H pushes through one store, each published, cost H². (Pushed
// through one store, a push took 30 ms on average up to 1,000 pushes and
// 50 ms from 1,000 to 2,000, growing; a store per batch keeps it near
// 30 ms, most of it fsync.)
//
// It appends a tab-separated line per push to -list: the ref, the tree's
// digest, the path of the 16 KiB file in the tree and that file's digest,
// for the caller to restore one and check the bytes.
//
// -filler N then grows the bucket's lookup index (docs/FORMAT.md §7a) by
// N synthetic entries, quickly, through the lookup package's own writers:
// data blobs with random IDs (drawn from -seed), 1 MiB each in a pack
// that does not exist, recorded by a fixed segment ID that does not exist
// either, written a million at a time with lookup.Write (a run per shard
// per batch), then every shard compacted once with lookup.Compact. The
// bucket then has the lookup index of a long history (10⁷ entries are
// about 1 GiB of runs, one per shard) without its packs, so that what a
// push reads of the index can be measured against its size. A reader
// never meets these entries unless it asks for their IDs. The bucket
// must keep a lookup index already (its first upload writes
// lookup/format).
package main
