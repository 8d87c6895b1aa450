// Package crashtest is the crash-consistency runner behind `logship
// crashtest`: it replays a journal and checks every state a crash could
// have left on the device (docs/bench.md has the figures).
//
// # Crash points in one pass
//
// [Crashtest] replays a journal once, window by window, into a scratch
// image A (replay.Replayer, cut at every barrier and every crash point). At
// each crash point it materializes the state for the check in a second
// image B without disturbing A, since a check may write: mounting replays a
// file system's own journal. B is brought level with A by copying only what
// differs:
//
//   - the byte ranges the journal wrote or discarded since B was last level
//     (a wrapper around A's device records every WriteAt and Discard the
//     replay issues);
//   - the ranges the bench itself changed in B (explored subsets, below);
//   - the ranges the check changed in B. Before every check B's mtime is
//     set to a sentinel and the loop device's page cache is flushed
//     (BLKFLSBUF) after it; a write through the loop device or to the file
//     moves the mtime. Only then is B compared with A, over the data extents
//     of either (SEEK_DATA/SEEK_HOLE), to find what the check wrote.
//
// Ranges are copied with copy_file_range over A's data extents and holes
// punched over A's holes, so B stays as sparse as A. The measured
// alternative, copying every extent of A at every point (RefreshFull), costs
// time in proportion to the data on the image rather than to the change;
// see BenchmarkRefresh.
//
// The cost is one pass over the journal plus the checks, where xfstests'
// replay-log loop replays from entry 0 for every point (FromZero reproduces
// that loop with our own replay, as the baseline to measure against).
//
// # Jobs, dedupe and shards
//
// With Jobs, there are that many check images B (slots), each with its own
// loop device. At a point the replay goroutine takes a free slot, brings it
// level with A as above (each slot keeps its own list of the ranges the
// journal changed since it was last level), starts the check in a goroutine
// and lets the replay go on; results are reported in order. Scratch space
// is Jobs+1 sparse images.
//
// With Dedupe, the replay's target compares every write with what A holds
// where it goes (and every discard with zeros) until one changes a byte; a
// point after which nothing changed is the state of the point before it,
// and takes its verdict without a check (Result.SameAs).
//
// A Shard checks every N-th state that needs a check. Every shard replays
// the whole journal and draws the same explored subsets, so they agree on
// which states exist and which are the same as the one before; Merge puts
// their --json reports together and finds states missing or twice.
//
// # Presets
//
// Preset returns a Checker for ext4, xfs or btrfs that replays the file
// system's own log into the copy first (e2fsck -E journal_only, or a mount
// and umount), then runs its read-only check (preset.go lists the commands).
//
// # Explored states
//
// Between two barriers the source made no promise of durability, so any
// subset of a window's writes and discards, applied in journal order on top
// of the state before the window, is a state it could have crashed into
// (docs/journal-format.md §3, "window"; CrashMonkey's idea). With Explore set, Crashtest
// also checks that many such subsets of the window that follows each point.
// One exception keeps the subsets honest: an entry that carries FLUSH and
// data is durable only after everything before it in its window, so it is
// kept only together with all of them (which is the next point's state).
//
// # Manifests
//
// A manifest names, per mark, files and their md5 sums (the lines a
// generic/455-style workload prints). At a mark with manifest lines the
// bench mounts B read-only through a loop device, reads the files and
// compares their digests. For ext4 with needs_recovery, "mount -o ro"
// replays the file system's journal into B (the kernel enables writes for
// the recovery), as a real mount after the crash would; "-o ro,noload"
// would show the stale state before recovery, and debugfs reads the same
// stale state, so neither is used. B is restored before the next state.
//
// # Faults
//
// Fault corrupts the replay on purpose (drops a window, or delays a write
// past a barrier). The tests use it to prove that a wrong replay makes
// Crashtest fail at the point where the state first goes wrong.
//
// Crashtest needs Linux. Loop devices and mounting need root.
package crashtest
