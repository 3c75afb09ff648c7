// Command gendata writes the deterministic benchmark inputs used by
// scripts/bench.sh: one large incompressible file and a tree of many small
// random files spread over a fixed number of directories.
//
// The bytes depend only on the flags (seeds are fixed), so two runs on any
// machine produce identical data.
package main
