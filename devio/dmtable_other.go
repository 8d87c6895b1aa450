//go:build !linux

package devio

// DMTable fails with ErrUnsupported.
func DMTable(name string) ([]DMTarget, error) {
	return nil, &Error{Op: "dm table", Path: name, Offset: -1, Err: ErrUnsupported}
}

// DMLoad fails with ErrUnsupported.
func DMLoad(name string, targets []DMTarget) error {
	return &Error{Op: "dm load", Path: name, Offset: -1, Err: ErrUnsupported}
}

// DMClear fails with ErrUnsupported.
func DMClear(name string) error {
	return &Error{Op: "dm clear", Path: name, Offset: -1, Err: ErrUnsupported}
}

// DMSuspend fails with ErrUnsupported.
func DMSuspend(name string) error {
	return &Error{Op: "dm suspend", Path: name, Offset: -1, Err: ErrUnsupported}
}

// DMResume fails with ErrUnsupported.
func DMResume(name string) error {
	return &Error{Op: "dm resume", Path: name, Offset: -1, Err: ErrUnsupported}
}

// DMReload fails with ErrUnsupported.
func DMReload(name string, targets []DMTarget) error {
	return &Error{Op: "dm reload", Path: name, Offset: -1, Err: ErrUnsupported}
}
