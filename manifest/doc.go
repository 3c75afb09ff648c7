// Package manifest is the experiment record of cas: the manifest that binds
// one run to exact inputs, code (commit and uncommitted diff), environment,
// seeds, outputs, logs and metrics, its canonical JSON encoding (RFC 8785)
// whose BLAKE3 is the manifest digest, the capture of all of that from the
// machine, and the comparison of two manifests.
//
// It sits between cli and cas: it stores inputs, outputs and the large
// parts of a manifest (package lists, diffs, logs, config files) as cas
// objects and refers to them by digest, so manifests stay small.
package manifest
