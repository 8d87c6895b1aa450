//go:build !linux

package devio

// Open fails with ErrUnsupported: devio works on Linux only.
func Open(path string, o Options) (*Device, error) {
	return nil, &Error{Op: "open", Path: path, Offset: -1, Err: ErrUnsupported}
}

// Sync fails with ErrUnsupported.
func (d *Device) Sync() error {
	return &Error{Op: "sync", Path: d.path, Offset: -1, Err: ErrUnsupported}
}

// Discard fails with ErrUnsupported.
func (d *Device) Discard(off, length int64) error {
	return &Error{Op: "discard", Path: d.path, Offset: off, Length: length, Err: ErrUnsupported}
}

// AttachLoop fails with ErrUnsupported.
func AttachLoop(backing string, o LoopOptions) (*Loop, error) {
	return nil, &Error{Op: "attach loop device to", Path: backing, Offset: -1, Err: ErrUnsupported}
}

// Detach fails with ErrUnsupported.
func (l *Loop) Detach() error {
	return &Error{Op: "detach", Path: l.path, Offset: -1, Err: ErrUnsupported}
}

// DMMessage fails with ErrUnsupported.
func DMMessage(name, message string) error {
	return &Error{Op: "dm message to", Path: name, Offset: -1, Err: ErrUnsupported}
}

// DMTargets fails with ErrUnsupported.
func DMTargets(name string) ([]DMTarget, error) {
	return nil, &Error{Op: "dm status", Path: name, Offset: -1, Err: ErrUnsupported}
}
