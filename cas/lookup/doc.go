// Package lookup is a remote's lookup index (docs/FORMAT.md §7a): the
// locations of blobs and the chunk lists of files, sharded by the first
// three hex digits of their IDs into immutable sorted runs, so that a
// reader asks about the IDs it needs with a few small requests whatever
// the remote's history, instead of loading every index segment.
//
// It owns the runs: writing a batch of entries as one run per shard,
// compacting a shard's runs (written before the runs they replace are
// deleted, so that no entry is ever lost to a crash or to a concurrent
// compaction), and looking IDs up with a listing of the shard, each
// run's fan-out table and the byte ranges of the buckets asked about.
//
// The lookup index is derived from the index segments, which stay the
// truth: what it answers is a hint that the repository checks (every
// blob against its ID when read) and never trusts for a push. It must
// not import the repository, print or read the wall clock.
package lookup
