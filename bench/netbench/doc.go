// Package netbench is the network benchmark behind `logship bench`: real
// `logship serve` and `logship ship` processes through a proxy that models
// a link (docs/bench.md has the figures).
//
// [Measure] runs one real `logship serve` and one real `logship ship` (as
// processes, so that each one's CPU time and peak RSS come from getrusage)
// through a [Proxy] that applies a [Link] model: per-connection and shared
// token buckets and a delay line for the RTT. The proxy reads the frames
// it carries into a [Ledger] (sessions, windows, acks), which gives the
// apply latency of every window. A [Sweep] runs every stream count over
// every link model and [Variant]; [Table], [WriteJSON], [WriteGoBench] and
// [Plot] report. [Workload] generates journals to ship.
//
// The package's tests also hold the Go benchmarks of the shipping hot
// paths, from the entry codec to applying a window (hotpath_test.go,
// docs/bench.md).
package netbench
