// Command floatbase prints, for each model file it is given, two figures
// `make bench` sets beside what cas stores it as: a byte-grouping + LZ4
// baseline (the Hugging Face Xet idea: each float tensor's bytes grouped
// by position within the element, each group of each 1 MiB block
// compressed with LZ4, github.com/pierrec/lz4/v4, kept raw where LZ4 does
// not shrink it; other bytes LZ4-compressed as they are), and the
// per-byte-position entropy bound of a byte-grouping coder (order-0
// entropy of each group of each 1 MiB block; other bytes counted raw). The
// tensors and their types are found as a push finds them
// (chunk.NaturalLayout).
//
//	go run ./scripts/floatbase FILE...
//
// prints one line per file: name raw_bytes bytegroup_lz4_bytes entropy_bytes.
package main
