// Package replica is the backup host's side of logship: tasks and their
// images, the applier, checkpoints and the staging log.
//
// A Server keeps one directory per task under its directory DIR:
//
//	DIR/.lock                  held (flock) by the one server using DIR
//	DIR/TASK/image             the raw image, a sparse file any tool can read
//	DIR/TASK/state             JSON: image size, journal sector size, the
//	                           durable position as of the last checkpoint, and
//	                           the checkpoint in the staging log
//	DIR/TASK/staging-NNNNNN.log staging logs (group commit), in the
//	                           dm-log-writes format
//
// A source opens a session (package parallel) naming its task, calls
// "open" (package control), and sends windows. The server checks every
// entry frame of a window before it touches the image (sectors inside the
// image, entries contiguous from the durable position, barriers only at
// the end of a window) and applies windows strictly in order, each one's
// entries in parallel with overlaps resolved (barrier.Coalesce,
// replay.ApplyExtents). A window is acked only once it is durable.
//
// Durability comes in two modes. With Config.SyncPerWindow every window is
// applied, the image fdatasynced and the state file rewritten before the
// ack. By default (group commit) windows are appended to a staging log,
// each followed by a MARK whose label carries the window's sequence, entry
// range and an xxhash64 of its entries; one fsync of the staging log acks
// every window received since the previous one. The image is updated from
// the windows in memory in the background, with one image sync per
// checkpoint, and the checkpoint (the last window applied to the image and
// synced) moves only after that sync. After a crash, opening the task
// replays the staging log from the checkpoint onto the image, up to the
// last intact window, before anything else happens.
//
// Damage in a staging log that a later window mark shows was durable is
// corruption, not a torn tail (scan.go): the task stays closed
// (*StagingError, CORRUPT) until an operator runs TruncateStaging.
//
// Grants (grants.go) say which tasks each client identity may use; the
// server checks them at the handshake (Server.Authorize, given to the
// transport) and in every call, lists only granted tasks in status, and
// takes reports only from the session holding the task. Error replies
// name no path of the server (its directory reads DIR).
//
// Memory is bounded by the transport's credit: a window's memory is
// released only after it has been applied to the image.
//
// Every file holding state is written durably: temp file, fsync, rename,
// fsync of the directory. docs/architecture.md ("Server") lists the
// goroutines, their owners and the recovery procedure.
package replica
