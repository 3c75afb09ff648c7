// Package clock is the one place that reads the wall clock and waits on
// it. Every other package takes a Clock: production code passes Real(),
// tests pass a Fake that moves only when told, so that grace periods,
// leases and retry backoff are tested without sleeping.
//
// clock owns time.Now, time.After, timers and sleeps; it must not import
// any other package of this module, nor know what the times it hands out
// are used for.
package clock
