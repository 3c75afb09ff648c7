// Package chunk decides where the bytes of a file are cut into chunks: the
// content-defined chunker (a normalized FastCDC-style gear hash, Params
// fixed per repository) and the natural boundaries of model files (torch
// zip and npz members, npy and safetensors tensor data) that no chunk may
// cross, so an unchanged tensor dedups whatever its neighbours do.
//
// It owns the chunk boundaries that docs/FORMAT.md §4 specifies and
// testdata/golden/chunks.json pins: the gear table, the masks and the cut
// loop. A change here is a change of format.
//
// It works on bytes and io.ReaderAt only. It must not know about
// repositories, packs, indexes or backends, must not hash or store chunks
// (its callers in cas do), and never prints; it imports nothing of this
// module but digest.
package chunk
