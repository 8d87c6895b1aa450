package control

// Task management calls (logship task rm, logship task resize). Like open,
// they act on the task named in the session's hello, so the transport's
// authorization (the identity's grants) covers them; the session holds the
// task while it makes them, so no ship can start meanwhile. logship task
// list uses OpStatus.
const (
	// OpRemove removes the session's task: its directory, image, state
	// and staging logs, durably. Refused with TASK_BUSY while another
	// session holds the task, with BAD_REQUEST when this session has
	// opened it. Reply: Removed.
	OpRemove = "remove"
	// OpResize grows the session's task's image to Resize.Size bytes.
	// Refused with MISMATCH for a smaller size (images only grow), with
	// TASK_BUSY while another session holds the task. Reply: Resized.
	OpResize = "resize"
)

// Resize is the body of an OpResize call.
type Resize struct {
	// Size is the new image size in bytes: at least the current one, a
	// multiple of the task's sector size.
	Size int64 `json:"size"`
}

// Removed is the reply to OpRemove.
type Removed struct {
	Name string `json:"name"`
	// ImageSize is the size the image had.
	ImageSize int64 `json:"image_size"`
}

// Resized is the reply to OpResize.
type Resized struct {
	Name      string `json:"name"`
	OldSize   int64  `json:"old_size"`
	ImageSize int64  `json:"image_size"` // the new size
}

// VerifyJournal is the journal identity with which a client that only
// reads a task's image (verify, recover) opens it (docs/protocol.md
// section 7.1); status then says the task is Reading.
const VerifyJournal = "logship-verify"

// A TaskState is the one word that says what a task is doing, in
// TaskStatus.State (docs/protocol.md, "Task states"). The server decides
// it from the first rule that holds, in the order of the constants.
type TaskState string

// Task states.
const (
	// StateCorrupt: the task's state on the server is damaged (its state
	// file is missing or does not parse, its image does not match it, or
	// a staging log is damaged where a crash cannot have damaged it). No
	// session can open it until an operator acts (docs/production.md).
	StateCorrupt TaskState = "Corrupt"
	// StateSyncing: a session holds the task and has opened it with a
	// sync journal (logship sync is copying blocks).
	StateSyncing TaskState = "Syncing"
	// StateReading: a session holds the task and has opened it only to
	// read its image (logship verify, logship recover).
	StateReading TaskState = "Reading"
	// StateCaughtUp: a session holds the task and ships a journal, and its
	// source's last report, made during this session, counts no entry
	// that is not yet durable.
	StateCaughtUp TaskState = "CaughtUp"
	// StateShipping: a session holds the task and ships a journal, with
	// entries left to ship or in flight (or no report from its source
	// yet).
	StateShipping TaskState = "Shipping"
	// StateError: no session holds the task and its last session failed
	// (TaskStatus.LastError says why: the server's verdict or a lost
	// connection). A ship that comes back and opens it moves it on.
	StateError TaskState = "Error"
	// StateBehind: no session holds the task, its last session ended
	// without an error, but its source's last report counted entries not
	// yet durable (the ship stopped before it had shipped them all).
	StateBehind TaskState = "Behind"
	// StateIdle: no session holds the task and nothing is known to remain:
	// no report, or the last report counted no entry that is not yet
	// durable.
	StateIdle TaskState = "Idle"
)
