//go:build race

package server_test

// raceEnabled: the race detector slows everything ~5-10×, so timing
// targets are checked loosely; the figures come from runs without it.
const raceEnabled = true
