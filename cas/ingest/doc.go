// Package ingest is the push pipeline of DESIGN §6: it walks the paths
// given (honouring .casignore and excludes, skipping special files, and
// trusting the stat cache where the store vouches for a file), reads what
// changed, cuts it into chunks (cas/chunk), hashes and compresses them on
// every core, packs them (cas/format) and hands each full pack to the
// Store, mirroring it to a remote while the push goes on. Memory stays
// bounded whatever the data: a byte budget on file data in flight, and
// at most two packs being built.
//
// It decides nothing about trust: whether a tree, file or blob the store
// already holds may be reused is the Store's answer (package cas, whose
// rules keep a push from relying on data that is gone), and it writes no
// index segment or ref: it returns what the caller writes, in the order
// the caller keeps. It must not print, read the wall clock, or import the
// repository.
package ingest
