// Package campaign is the fault-injection campaign behind `logship bench
// faults`.
//
// A [Campaign] ships journals with real processes through the proxy while
// it kills them, cuts, resets and stalls streams, flips bits on the wire
// and fills the server's disk, and checks after every server crash and at
// the end of every run, against the frames the proxy saw and a local
// replay, that no acked window was lost and that the image is a state at a
// window boundary.
//
// It ships through netbench's Proxy and, with Explore set, also runs
// crashtest.Crashtest over the journals it ships.
package campaign
