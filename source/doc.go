// Package source is the source side of logship: it reads a dm-log-writes
// journal (a file at rest, or a live log that the kernel is writing), cuts
// it into barrier windows and ships them over a parallel session to a
// logship server, resuming from the server's durable position after any
// disconnect.
//
// # Data flow
//
//	journal (file or log device)
//	  │ journal.Reader (at rest) or journal.Tailer (Follow; O_DIRECT on a device)
//	  ▼
//	barrier.Splitter ── windows capped below the session's credit
//	  │ one DATA frame per entry (control.AppendEntry); a write larger than a
//	  │ frame goes as sub-range frames with the same entry index
//	  ▼
//	parallel.Session ══ N TCP streams ══▶ server: applies, acks durable windows
//
// A [Shipper] keeps no state of its own between runs: on every (re)connect
// it calls control.OpOpen, learns which entries of this journal are durable
// (control.Position) and resends from there, numbering windows from
// Position.NextWindow. Re-applying an entry is harmless (writes are
// absolute), so a window that was sent but not acked is simply sent again.
//
// # Journal identity
//
// The server keeps one durable position per task, tagged with the identity
// of the journal it belongs to, so that a new journal starts from entry 0
// instead of resuming at the old one's index. [JournalID] is that identity:
//
//	"xxh64:" + 16 hex digits of xxhash64( u32le(sector size) ||
//	           journal bytes [S, S + min(IDPrefix, E - S)) )
//
// where S is the sector size (the first entry's header is at byte S) and E
// is the end of the last entry the superblock counts. It covers the first
// 64 KiB of entries, or all of them in a smaller journal, and never a byte
// past the counted entries, so stale data beyond them does not enter it.
// The identity is stable as the journal grows: a live log is identified
// only once its counted entries reach S+IDPrefix (or it ends), and from
// then on those bytes never change. The same journal shipped live and,
// later, at rest gets the same identity. mkfs and file systems write
// random UUIDs and timestamps early, so two runs of the same workload get
// different identities in practice.
//
// A log started by a rotation ([Rotate]) carries, among its first
// entries, a mark labelled "logship-log.SEQ.NONCE" (SEQ its place in the
// rotation, NONCE random): its identity covers the entries up to and
// including that mark when it lies within the first IDPrefix bytes, so a
// rotated log is identified as soon as its mark is counted, and two
// generations of one log device never share an identity.
//
// # Reconnecting
//
// Run reconnects by itself after a lost connection, a server restart or a
// refused frame, with exponential backoff (200 ms doubling to 10 s, with
// jitter), and logs every retry. It gives up when no window has been acked
// for Config.RetryFor (default 5 minutes). Errors that a retry cannot cure
// end Run at once: authentication or protocol version refused, a journal
// that does not parse, an entry outside the image, the server refusing the
// task, the log-writes target reporting logging_disabled.
//
// # Live logs
//
// With Follow the journal is tailed with journal.Tailer, which knows when
// the kernel rewrites nr_entries (only after a FUA or MARK entry), that the
// entry just counted may still be in flight, and that entries past the
// count may be stale. A block device is read with O_DIRECT through an
// aligning io.ReaderAt (devio.OpenJournal), since the kernel writes the log with bios that
// bypass the log device's page cache; a regular file is read through the
// page cache, which is coherent with any writer of the file. With
// Config.DMName the Shipper also sends a mark to the target every
// Config.Tick while new entries were logged since the last one, so the
// superblock keeps advancing when the workload issues no FUA, and stops
// with ErrLoggingDisabled when the target's status reports
// logging_disabled. When the log has nothing new for a moment, the open
// window is closed and sent early (adding a barrier is always safe), so
// entries never wait for the next barrier to be shipped.
//
// # Log rotation
//
// The kernel's log is linear: full, it stops logging. [Rotate] swaps a
// target's log device for a fresh one (zeroed start, table load, suspend,
// resume: the old target writes its end mark while it is torn down) and
// logs a rotation mark "logship-log.SEQ.NONCE" in the new log, SEQ one
// more than the old log's. A [Follower] ships a target's logs in that
// order, each by a Shipper to its end mark, each its own journal on the
// server: a new journal starts at entry 0 and window numbers go on, so
// nothing is skipped or sent twice. Resuming needs nothing but the
// server's durable position: the Follower starts with the log whose
// identity is that position's journal (an old log not shipped to its end
// is drained first: the target's table says it is no longer current, so
// it is read at rest to its last counted entry), then follows the
// rotation marks. A log is only reused once the server holds all of it
// (Rotate's Check; the Follower rotates only while it ships the current
// log). A task durable in a journal none of the logs holds, a log that
// ends without its end mark, or logging_disabled, are gaps: with
// ResyncOnGap the Follower rotates to a fresh log, syncs the differences
// from the live device and ships the fresh log from its rotation mark.
//
// Memory is bounded by the session's credit (frames queued) and the
// journal reader's read-ahead, whatever the journal's size.
package source
