// Package gc is the store's two-phase garbage collection protocol: plans
// of unreferenced packs, sweeps that claim a plan and carry it out, keep
// markers that pushes leave for condemned packs they need, and the
// records of what a sweep deleted (docs/FORMAT.md §10, keys under gc/).
//
// Collect runs one collection against a Store, a narrow view of one
// backend that the repository (package cas) provides. What is reachable
// is not decided here: Store.Mark says which packs are live, and the
// repository's mark is the one place that knows what refs, pins and the
// closures of the manifests they name keep (cas.Repo.Keeps). So gc can
// only be run through a Store that marks, and never deletes a pack that
// a mark found live, a keep marker names, or the backend retains.
//
// Package gc must not read packs, segments or trees, know about manifests
// or the local index, read the wall clock (the Store's clock says what
// time it is) or print.
package gc
