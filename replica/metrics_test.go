package replica

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// TestErrorKind: the metrics label is the lower-case protocol name of the
// code the client is told (control.Code's String), FORBIDDEN included.
func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("open: %w", ErrNoTask), "no_task"},
		{ErrTaskBusy, "task_busy"},
		{fmt.Errorf("window 3: %w", ErrSequence), "sequence"},
		{ErrForbidden, "forbidden"},
		{fmt.Errorf("write: %w", unix.ENOSPC), "no_space"},
		{errors.New("something else"), "io"},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
