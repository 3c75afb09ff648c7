// Package cli holds the cobra commands of cas. Each command parses its
// flags into an options struct, calls the library (cas, later manifest)
// and renders text or --json to the IO streams the Factory hands out.
// It is the only package that prints.
package cli
