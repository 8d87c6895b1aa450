package devio

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// dmCall issues one device-mapper ioctl built by encode, naming the device
// and op in its error.
func dmCall(op, name string, req uintptr, b []byte, err error) error {
	if err == nil {
		err = dmIoctl(req, b)
	}
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			err = fmt.Errorf("no such device-mapper device: %w", err)
		}
		return &Error{Op: op, Path: name, Offset: -1, Err: err}
	}
	return nil
}

// DMTable returns the live table of the device-mapper device called name,
// what `dmsetup table NAME` prints: each target with its parameters in
// DMTarget.Status (devices as major:minor, e.g. "254:0 254:16" for
// log-writes).
func DMTable(name string) ([]DMTarget, error) {
	for size := dmStatusBufInitial; ; size *= 2 {
		b, err := encodeTable(name, size, false)
		if err = dmCall("dm table", name, dmTableStatus, b, err); err != nil {
			return nil, err
		}
		targets, full, err := decodeStatus(b)
		if err != nil {
			return nil, &Error{Op: "dm table", Path: name, Offset: -1, Err: err}
		}
		if !full {
			return targets, nil
		}
		if size >= dmStatusBufMax {
			return nil, &Error{Op: "dm table", Path: name, Offset: -1, Err: fmt.Errorf("table does not fit in %d bytes", size)}
		}
	}
}

// DMLoad loads targets (parameters in DMTarget.Status) as the inactive
// table of the device-mapper device called name (DM_TABLE_LOAD, `dmsetup
// load`): the kernel constructs the targets, the device keeps running on
// its live table until DMResume swaps the new one in.
func DMLoad(name string, targets []DMTarget) error {
	b, err := encodeLoad(name, targets)
	return dmCall("dm load", name, dmTableLoad, b, err)
}

// DMClear drops the inactive table of name (DM_TABLE_CLEAR, `dmsetup
// clear`).
func DMClear(name string) error {
	b, err := dmRequest(name, dmIoctlSize)
	return dmCall("dm clear", name, dmTableClear, b, err)
}

// DMSuspend suspends the device called name (DM_DEV_SUSPEND, `dmsetup
// suspend`): the file system on it is frozen, I/O in flight completes and
// is flushed, new I/O waits until DMResume.
func DMSuspend(name string) error {
	b, err := encodeSuspend(name, true)
	return dmCall("dm suspend", name, dmDevSuspend, b, err)
}

// DMResume resumes the device called name (`dmsetup resume`), swapping in
// its inactive table if one was loaded: the old table is destroyed before
// DMResume returns (its targets' destructors have run).
func DMResume(name string) error {
	b, err := encodeSuspend(name, false)
	return dmCall("dm resume", name, dmDevSuspend, b, err)
}

// DMReload replaces the live table of name with targets: load, suspend,
// resume (`dmsetup reload` then `dmsetup suspend` and `resume`). If the
// load fails nothing changed; if the suspend fails the loaded table is
// cleared; if the resume fails it is tried once more, so that the device
// is not left suspended, and the error is returned.
func DMReload(name string, targets []DMTarget) error {
	if err := DMLoad(name, targets); err != nil {
		return err
	}
	if err := DMSuspend(name); err != nil {
		if cerr := DMClear(name); cerr != nil {
			return fmt.Errorf("%w (and clearing the loaded table: %v)", err, cerr)
		}
		return err
	}
	if err := DMResume(name); err != nil {
		if rerr := DMResume(name); rerr != nil {
			return fmt.Errorf("%w; the device may still be suspended (a second resume: %v)", err, rerr)
		}
		return fmt.Errorf("%w (a second resume succeeded)", err)
	}
	return nil
}
