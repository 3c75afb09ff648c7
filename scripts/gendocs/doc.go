// Command gendocs writes the CLI reference (one Markdown page per command)
// from the cobra command tree: go run ./scripts/gendocs docs/cli
package main
