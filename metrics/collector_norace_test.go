//go:build !race

package metrics

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = false
