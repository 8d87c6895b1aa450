package blocksync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/retry"
)

// What sync, verify and recover share: their sessions, how they open the
// task, which failures a retry may cure.

// Defaults for zero fields of SyncConfig.
const (
	DefaultRetryFor = 5 * time.Minute
	// DefaultDrain bounds how long a stopping sync waits for the server to
	// ack what was sent.
	DefaultDrain = 10 * time.Second
)

// ErrEntryTooLarge: a block larger than the server's credit allows in one
// window (source.ErrEntryTooLarge is this error).
var ErrEntryTooLarge = errors.New("source: entry larger than the session credit")

// BlockSectorSize is the sector size of the entries a sync sends (its
// journal's sector size): a device must be a multiple of it.
const BlockSectorSize = 512

// ErrSize: the device and the task's image cannot be compared or copied
// as they are (sizes that differ, or a size that is not a multiple of
// BlockSectorSize).
var ErrSize = errors.New("source: device size")

// openBlocks opens the task in sess for block calls (and, for sync, for
// windows of the sync journal o.Journal), its sector size set to
// BlockSectorSize. o.Size > 0 creates the task with that size if it does
// not exist; o.At opens it at a mark (rebuilt, or live), which the reply
// must confirm.
func openBlocks(ctx context.Context, sess *parallel.Session, o control.Open) (control.Task, error) {
	o.SectorSize = BlockSectorSize
	req := control.Request{Op: control.OpOpen, Open: &o}
	resp, err := sess.Call(ctx, control.Marshal(req))
	if err != nil {
		var re *parallel.RemoteError
		if errors.As(err, &re) && sess.Err() == nil {
			te := &control.TaskError{Task: sess.Task(), Err: err}
			switch control.Code(re.Code) {
			case control.CodeNoTask:
				te.Hint = "sync the device to it first"
			case control.CodeNoHistory:
				te.Hint = "the state at a mark needs logship serve --retain from the task's creation on"
			}
			return control.Task{}, te
		}
		return control.Task{}, err
	}
	var t control.Task
	if err := control.Unmarshal(resp, &t); err != nil {
		return t, &control.TaskError{Task: sess.Task(), Err: err}
	}
	if t.ImageSize <= 0 || !o.Live && t.Durable.Journal != o.Journal {
		return t, &control.TaskError{Task: sess.Task(), Err: fmt.Errorf("the server answered open with %+v", t)}
	}
	if t.At != o.At {
		// A server that does not know Open.At ignores it: it would give the
		// image as it is now.
		return t, &control.TaskError{Task: sess.Task(), Err: fmt.Errorf("%w: the server does not open a task at a mark (a logship serve older than this client?)", ErrNotSupported)}
	}
	return t, nil
}

// TaskStatus calls OpStatus in sess and returns the status of task name,
// and false if the server does not have it.
func TaskStatus(ctx context.Context, sess *parallel.Session, name string) (control.TaskStatus, bool, error) {
	resp, err := sess.Call(ctx, control.Marshal(control.Request{Op: control.OpStatus}))
	if err != nil {
		return control.TaskStatus{}, false, err
	}
	var st control.Status
	if err := control.Unmarshal(resp, &st); err != nil {
		return control.TaskStatus{}, false, &control.TaskError{Task: name, Err: err}
	}
	for _, ts := range st.Tasks {
		if ts.Name == name {
			return ts, true, nil
		}
	}
	return control.TaskStatus{}, false, nil
}

// retryable reports whether a new session may get past err: a lost or
// refused connection, a server restarting, busy or full for a moment
// (retry.Classify); not a failure of the local device or a size that
// does not fit.
func retryable(err error) bool {
	var le *LocalError
	var te *control.TaskError
	var re *parallel.RemoteError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &le), errors.Is(err, ErrSize), errors.Is(err, digest.ErrTree), errors.Is(err, control.ErrMalformed):
		return false
	case errors.As(err, &te) && !errors.As(err, &re):
		return false // the server answered nonsense
	}
	return retry.Classify(err).Transient()
}

// directAlign aligns the buffers of block reads and writes (O_DIRECT on
// block devices).
const directAlign = 4096

// openLocal opens the local device of a sync, verify or recover with o; a
// block device with O_DIRECT, since a file system on it (or the kernel
// under a log-writes target) writes it with bios that bypass its page
// cache, which may then hold stale pages. Reads of blocks and pieces are
// aligned for it.
func openLocal(path string, o devio.Options) (*devio.Device, error) {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		o.Direct = true
	}
	if err != nil && !(o.Create && errors.Is(err, os.ErrNotExist)) {
		return nil, &LocalError{Path: path, Err: err}
	}
	d, err := devio.Open(path, o)
	if err != nil {
		return nil, &LocalError{Path: path, Err: err}
	}
	if d.LogicalBlockSize() > directAlign {
		d.Close()
		return nil, &LocalError{Path: path, Err: fmt.Errorf("logical block size %d is larger than %d", d.LogicalBlockSize(), directAlign)}
	}
	return d, nil
}

// wireBytes is what a session moved on the wire, both ways.
func sessionWire(sess *parallel.Session) (out, in int64) {
	if sess == nil {
		return 0, 0
	}
	for _, x := range sess.Stats().Streams {
		out += int64(x.BytesOut)
		in += int64(x.BytesIn)
	}
	return out, in
}
