// Package remote defines Backend, the small interface through which cas
// stores objects, and its implementations: a local directory (the embedded
// default under .cas/), an in-memory store for tests, and (in its own file)
// S3-compatible services. It also keeps a store's remotes: Config, one
// remote's settings, parsed into an S3Config (ParseURL, AWS's endpoints by
// default), and the ConfigFile that records them (LoadConfigs, AddConfig,
// RemoveConfig, LookupConfig). What may name a remote is the store's rule.
//
// Vendor errors never leave this package: every implementation translates
// them into the sentinels below, so callers test with errors.Is. It also
// holds what is about backends rather than about the store's contents:
// bounded reads of small objects (ReadSmall), the invalid-object error,
// conditional-write probes, retention, retries and fault injection.
//
// remote must not know what the objects it holds mean (packs, segments,
// refs), import the index or the store, read the wall clock (a clock.Clock
// is passed in) or print. minio-go types never leave it.
package remote
