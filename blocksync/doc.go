// Package blocksync is the block half of the source side of logship: it
// compares a local block device or file with a task's image on a logship
// server and copies what differs, in either direction, without a journal.
//
//   - [Sync] copies the device to the image (every block, or only what
//     differs), as windows of a sync journal the server acks like any
//     other (`logship sync`, and a Follower's resync after a gap).
//   - [Verify] compares the device with the image and lists the ranges
//     that differ.
//   - [Recover] restores the image, or its state at a mark, into a
//     device.
//
// All three take the device span by span and compare digest trees
// (package digest) with the server's, level by level, so that only the
// digests of what differs travel (digest.go). [Freeze] freezes a mounted
// file system while it is read. Package source ships journals and uses
// Sync to resync after a gap.
package blocksync
