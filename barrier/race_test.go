//go:build race

package barrier_test

// raceEnabled makes the heaviest property tests run fewer seeds under the
// race detector, which only needs a few to see extents that share bytes.
const raceEnabled = true
