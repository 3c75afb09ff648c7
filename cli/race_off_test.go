//go:build !race

package cli

// raceEnabled tells tests that the race detector is on.
const raceEnabled = false
