package control

import "time"

// OpReport: a source tells the server how far its journal goes (Report),
// so that status can say how far the image lags behind the source. The
// reply is an empty object. Allowed on a session that names a task; the
// server keeps the last report of each task in memory only.
const OpReport = "report"

// Report is the body of a report call: the source's view of the journal
// it ships, as of Time on the source's clock. Every field but Journal is
// optional.
type Report struct {
	// Journal is the identity of the journal shipped (as in Open).
	Journal string `json:"journal"`
	// Log is the path of the journal on the source (a log device).
	Log string `json:"log,omitempty"`
	// Seq is the log's place in a rotation (docs/production.md): 0 for a
	// log that carries no rotation mark.
	Seq uint64 `json:"seq,omitempty"`
	// Head is the number of entries of Journal the source knows to exist:
	// those its superblock counts, or more when the log-writes target's
	// status says so.
	Head int64 `json:"head"`
	// Read is the number of entries the source has read (sent, or in the
	// window it is filling).
	Read int64 `json:"read"`
	// LagBytes is the number of log bytes from the first entry not yet
	// durable to the head (the end of what the target has logged when the
	// source watches it, else the end of the last entry read).
	LagBytes int64 `json:"lag_bytes"`
	// LagSeconds is the age, on the source, of the oldest entry it has
	// read that is not yet durable; 0 when everything read is durable.
	LagSeconds float64 `json:"lag_seconds"`
	// LogSize and LogUsed are the log device's size and the bytes the
	// target has allocated in it (0 when unknown).
	LogSize int64 `json:"log_size,omitempty"`
	LogUsed int64 `json:"log_used,omitempty"`
	// LoggingDisabled: the target reports logging_disabled (its log filled
	// or failed): writes are reaching the device unlogged.
	LoggingDisabled bool `json:"logging_disabled,omitempty"`
	// Error is the source's last failure (a lost connection it is
	// retrying, ...), empty if none since its last durable progress.
	Error string `json:"error,omitempty"`
	// Time is when the source made the report.
	Time time.Time `json:"time"`
}

// SessionStatus describes the session that holds a task, in TaskStatus.
type SessionStatus struct {
	ID      string    `json:"id"`      // the session id, hex
	Auth    string    `json:"auth"`    // how it authenticated
	Streams int       `json:"streams"` // its TCP streams
	Started time.Time `json:"started"` // when the server accepted it
	Journal string    `json:"journal"` // the journal it opened the task with
	// Windows and Bytes count the windows received in the session and
	// their payload bytes (uncompressed).
	Windows int64 `json:"windows"`
	Bytes   int64 `json:"bytes"`
	// StreamBytes are the bytes received on each stream, on the wire.
	StreamBytes []int64 `json:"stream_bytes"`
}

// Lag is how far the image is behind the source, in TaskStatus. It is
// computed by the server from the last Report of the task's source.
type Lag struct {
	// Entries of the source's journal not yet durable (head minus the
	// durable position), when the report is for the durable journal; -1
	// when it is not (unknown).
	Entries int64 `json:"entries"`
	// ToShip and InFlight split Entries: ToShip entries the source knows
	// to exist but has not read yet (head minus read), InFlight entries
	// it has read (sent, or in the window it is filling) that are not yet
	// durable (read minus the durable position). Both -1 when Entries is.
	// An older server leaves them out.
	ToShip   int64 `json:"to_ship"`
	InFlight int64 `json:"in_flight"`
	// Bytes and Seconds: Report.LagBytes and Report.LagSeconds; Seconds
	// grows with the report's age while entries are pending.
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// ReportAge is how long ago (server clock) the report arrived.
	ReportAge float64 `json:"report_age"`
}
