// Package s3test runs a real S3 server for tests: versitygw on a free
// 127.0.0.1 port over a temporary directory (Start, StartServer, Shared),
// and FaultProxy, an HTTP proxy that goes between a client and that
// server to answer errors, cut, corrupt or delay requests and responses.
//
// versitygw is found on PATH or in $(go env GOPATH)/bin; `make deps`
// installs it. Without it the S3 tests skip, except when CI=true, where
// they fail.
package s3test
