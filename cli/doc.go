// Package cli holds the cobra commands of cas. Each command parses its
// flags into an options struct, calls the library (manifest, cas and
// their subpackages) through the stores and remotes its Factory hands
// out, and renders text or --json to the IO streams. It is the only
// package that prints, and the only one that names flags and commands:
// library errors are typed, and cli adds the hint of what to type next.
//
// cli must not decide anything that protects data: what a run keeps, the
// order of writes to a store or remote, what gc may delete and what a
// verification concludes all live in the library.
package cli
