// Package par runs work on a bounded number of goroutines: ForEach, the
// one loop the store, its ingest pipeline and gc use for requests and
// files in flight. It must not import anything of this module.
package par
