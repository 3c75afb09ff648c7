// Package bufpool lends byte buffers for file data by power-of-two size
// class, from free lists that survive garbage collections, so a push or a
// restore streaming gigabytes allocates a few MiB once. It must not
// import anything of this module.
package bufpool
