// Package ingest is the push pipeline of DESIGN §6: it walks the paths
// given directory by directory (honouring .casignore and excludes,
// skipping special files, and trusting the stat cache where the store
// vouches for a file), reads what changed, cuts it into chunks
// (cas/chunk), hashes and compresses them on every core, packs them
// (cas/format) and hands each full pack to the Store, mirroring it to a
// remote while the push goes on. Memory stays bounded whatever the data:
// a byte budget on small files read whole, another on the read buffers
// large files are cut and packed from (two), at most two packs
// being built, and, whatever the number of files, only the directories
// being worked on held (each tree is stored, and its stat cache entries
// saved, as soon as everything below it is), a bounded queue of files to
// read, and one batch of packs not yet indexed.
//
// It decides nothing about trust: whether a tree, file or blob the store
// already holds may be reused is the Store's answer (package cas, whose
// rules keep a push from relying on data that is gone). It writes no
// index segment or ref itself: it hands the Store each batch of packs
// written, in order, for the segment that names them (Store.IndexPacks),
// and never a tree before what lies below it. It must not print, read
// the wall clock, or import the repository.
package ingest
