// Package ckpt inspects model checkpoints without Python: torch zip and
// legacy (pre-1.6) checkpoints, plain pickles, numpy .npy and .npz, and
// safetensors. It lists every tensor with its object-graph path, dtype,
// shape and the BLAKE3 digest of its data, and finds random number
// generator states by their structure, wherever they sit: torch CPU and
// CUDA generator states, numpy's legacy MT19937 tuple and Generator state
// dicts, and Python's random state. Each state gets a fingerprint, the
// BLAKE3 of a canonical encoding documented in docs/checkpoints.md.
//
// Pickles are parsed by a Decoder that never executes them: a class lookup
// maps the classes checkpoints use to Go values and everything else to
// opaque Objects. Every reader is bounded by Limits, so hostile files
// (zip bombs, absurd shapes, deep or cyclic pickles) cost bounded memory
// and time.
//
// Lint warns about what resuming a run bit-exactly would miss; Diff
// compares two checkpoints tensor by tensor and state by state.
//
// ckpt works for the manifest package (RNG fingerprints recorded with a
// run's outputs) and for the cli's inspect command; it imports only the
// standard library and the digest package. It must not execute anything
// it reads, read a store, or print.
package ckpt
