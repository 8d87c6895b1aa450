// Package proc runs the logship processes of the bench and the fault
// campaign (`logship serve`, `logship ship`) as children that die with the
// bench, keeps the tail of their output and reports what they cost
// (getrusage). Tail also bounds the output kept of a crash test's check
// command.
package proc
