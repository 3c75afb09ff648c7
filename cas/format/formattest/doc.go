// Package formattest holds what the golden tests of the store's formats
// share: the trees the golden vectors are built from, which a test can
// turn into a format.Tree or write to disk, and the reading and
// rewriting of golden files. It is imported by tests only, and must not
// be imported by non-test code or change a golden value.
package formattest
