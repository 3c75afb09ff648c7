// Package par runs work on a bounded number of goroutines: ForEach, the
// one loop the store, its ingest pipeline and gc use for requests and
// files in flight, and Stream, the same over items a producer finds as
// it goes (restore's and verify's walks), so that none is listed first.
// It must not import anything of this module.
package par
