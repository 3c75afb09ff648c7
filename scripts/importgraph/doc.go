// Command importgraph prints which packages of this module import which,
// one line per package, as docs/architecture.md shows it:
//
//	go run ./scripts/importgraph
//
// Its test fails when the graph block of docs/architecture.md differs from
// the packages' real imports; `go test ./scripts/importgraph -update`
// rewrites the block.
package main
