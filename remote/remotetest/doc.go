// Package remotetest is the conformance suite every remote.Backend must
// pass: the in-memory and local-directory backends in their unit tests,
// S3 against a real server in the integration tests. It is test support:
// it must not be imported by non-test code of the store, and it may read
// the wall clock (it checks real backends' timestamps).
package remotetest
