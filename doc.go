// Command cas is a content-addressed artifact store for reproducible ML
// research. See the README and docs/ for a tour, and docs/architecture.md
// for how the packages below it are cut.
//
// main only runs cli.Main; it must hold no logic of its own.
package main
