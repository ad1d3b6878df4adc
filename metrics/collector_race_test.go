//go:build race

package metrics

// raceEnabled is true when the tests run under the race detector, which
// makes the 10-million-record memory test too slow.
const raceEnabled = true
