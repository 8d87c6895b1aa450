// Package devio opens files, block devices and loop devices for positioned
// I/O, and is the project's only door to devices.
//
// A [Device] is either a regular file (an image on the backup host, a journal
// captured to a file) or a block device (the protected volume, a dm-log-writes
// log device, a loop device). It reports its size ([Device.Size]: BLKGETSIZE64
// or the file size) and its logical block size ([Device.LogicalBlockSize]:
// BLKSSZGET, or 512 for files), reads and writes at absolute offsets, syncs
// with fdatasync, discards ranges, and hashes ranges ([Device.Digest],
// xxhash64).
//
// # Direct I/O
//
// With [Options].Direct the device is opened with O_DIRECT. Every offset,
// length and buffer address must then be a multiple of LogicalBlockSize, or
// the call fails with [ErrUnaligned] before anything reaches the kernel.
// [AlignedBuffer] allocates suitable buffers.
//
// # Journals
//
// [OpenJournal] is how every command opens a dm-log-writes journal: a log
// block device with O_DIRECT (the kernel writes it behind the page cache, so
// buffered reads of a live log can be stale), any read rounded out to the
// block size through an aligned bounce buffer; a regular file with plain
// reads; a zstd-compressed file decompressed into an unlinked temporary
// file. See
// docs/journal-format.md §5.
//
// # Bounds
//
// WriteAt never writes past the end of a block device, nor past the end of a
// regular file unless the file was opened with Create or Grow: such a write
// fails with [ErrOutOfRange] and writes nothing. Reads follow io.ReaderAt.
//
// # Discard policy
//
// The whole project relies on one rule: after a successful [Device.Discard]
// the range reads back as zeros, and no part of it is ever skipped silently.
// (xfstests' replay-log silently skips discards larger than 128 MiB when it
// falls back to writing zeros; devio does not.) The mechanism depends on the
// kind of device:
//
//   - Block device: BLKZEROOUT. The kernel implements it with WRITE ZEROES
//     where the device supports it (which may unmap: a loop device punches a
//     hole in its backing file), and otherwise writes zero pages itself, so
//     the result always reads back as zeros. BLKDISCARD is not used by
//     default, because a plain discard does not promise zeros (the kernel
//     dropped "discard_zeroes_data"). Callers that only want unmap semantics,
//     and accept undefined contents, set [Options].DiscardOnly: then Discard
//     issues BLKDISCARD and reports an error where the device cannot discard
//     (an error that, as nothing changed, does not fail the Device).
//   - Regular file: fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE). The
//     size stays, the blocks are freed, the range reads as zeros.
//   - Last resort, when the kernel says the method is not supported
//     (EOPNOTSUPP, ENOTTY, ENOSYS, EINVAL): devio writes zeros itself over the
//     whole remaining range, in 1 MiB writes from one shared, aligned, zeroed
//     buffer, whatever the size of the range.
//
// Ranges are handed to the kernel in chunks of at most 1 GiB, so a single
// system call never runs unbounded. A range that ends past the device's size
// fails with [ErrOutOfRange] and changes nothing. On a block device (and with
// Direct) offset and length must be multiples of LogicalBlockSize
// ([ErrUnaligned]), as the kernel's ioctls require. Like a write, a discard is
// durable only after [Device.Sync].
//
// # Errors
//
// Errors name the path, the operation and the byte range (*[Error]), and wrap
// the sentinels [ErrUnaligned], [ErrOutOfRange], [ErrBusy], [ErrNotBlock],
// [ErrReadOnly], [ErrFailed] and [ErrUnsupported] or the kernel's errno, for
// errors.Is. Errors from the kernel on WriteAt, Discard and Sync are sticky:
// after the first one, every later WriteAt, Discard and Sync on that Device
// fails with [ErrFailed] wrapping it. A failed fdatasync may have dropped dirty
// data that a retry would report as clean, so the only safe continuation is to
// reopen and redo the work. Reads keep working.
//
// # Exclusive access
//
// [Options].Exclusive opens a block device with O_EXCL, which the kernel
// refuses while the device is mounted or held by another exclusive opener
// (device-mapper, md, another O_EXCL open): Open then fails with [ErrBusy]
// wrapping EBUSY. On a regular file it takes flock(LOCK_EX|LOCK_NB), held until
// Close; a second exclusive open fails with [ErrBusy].
//
// # Loop devices and device-mapper
//
// [AttachLoop] binds a file to a free loop device (the crash bench materializes
// states on them). [DMMessage], [DMStatus] and [Mark] send messages to and read
// the status of a device-mapper target, as `dmsetup message` and `dmsetup
// status` do, through /dev/mapper/control.
//
// devio works on Linux only; elsewhere Open, AttachLoop and the device-mapper
// calls fail with [ErrUnsupported].
package devio
