// Package manifest is the experiment record of cas: the manifest that binds
// one run to exact inputs, code (commit and uncommitted diff), environment,
// seeds, outputs, logs and metrics, its canonical JSON encoding (RFC 8785)
// whose BLAKE3 is the manifest digest, the capture of all of that from the
// machine, and the comparison of two manifests.
//
// It sits between cli and cas: it stores inputs, outputs and the large
// parts of a manifest (package lists, diffs, logs, config files) as cas
// objects and refers to them by digest, so manifests stay small. The
// manifest's types, canonical form and closure (what a run keeps alive)
// live in manifest/schema, a leaf the store itself reads; this package
// re-exports the types. Verification (Verify, VerifyPin) and the verdict
// of a reproduction (Compare) are decided here, as typed checks; cli only
// renders them.
//
// manifest must not print (it reports through Warn callbacks and
// returned values), name cli flags in its errors (OptionError names the
// Options field), or read the wall clock other than through the store's.
package manifest
