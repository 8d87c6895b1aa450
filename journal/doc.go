// Package journal reads and writes the journals that the Linux
// device-mapper log-writes target (drivers/md/dm-log-writes.c) and QEMU's
// blklogwrites driver record of every write to a block device.
//
// # Layout
//
// Every integer is little-endian. S is the journal's sector size, taken from
// the superblock: the data device's logical block size for the kernel,
// log-sector-size for QEMU. Every position and length below is in units of S.
//
//	byte 0     superblock, one S-byte block
//	           u64 magic   0x006a736677736872 ("rhswfsj\0")      @0
//	           u64 version 1                                     @8
//	           u64 nr_entries                                    @16
//	           u32 sectorsize                                    @24
//	           4 bytes of padding (garbage on kernel logs)       @28, ignored
//	byte S     entry 0: a header of one S-byte block
//	           u64 sector      first sector written, in S units  @0
//	           u64 nr_sectors  length, in S units                @8
//	           u64 flags       FLUSH=1 FUA=2 DISCARD=4 MARK=8 METADATA=16 @16
//	           u64 data_len    MARK: length of the label, else 0  @24
//	           MARK label at @32, NUL-padded
//	           then the payload, nr_sectors*S bytes, unless DISCARD
//	next header = header + S*(1 + (DISCARD ? 0 : nr_sectors))
//
// The kernel rewrites nr_entries only after a FUA or MARK entry and at
// teardown (which logs the mark "dm-log-writes-end"); QEMU rewrites it after
// every FLUSH. A [Reader] visits exactly nr_entries entries, as xfstests'
// replay-log does; anything past them is stale or still in flight.
//
// # Errors
//
// A file that is not a journal gives [ErrFormat]. An entry that fails
// validation gives [ErrCorrupt]; a journal cut short gives
// [io.ErrUnexpectedEOF]. Both come wrapped in an [*EntryError] that names the
// entry index and its byte offset. Errors are sticky: after one, the Reader
// returns it again on every call.
package journal
