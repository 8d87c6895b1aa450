package crashtest

import (
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		elapsed     time.Duration
		want        string
	}{
		{0, 264, 0, "point 0 of 264 (0.0%)"},
		{0, 264, time.Second, "point 0 of 264 (0.0%)"},
		{66, 264, 2 * time.Second, "point 66 of 264 (25.0%), 33.0 points/s, ETA 6s"},
		{264, 264, 8 * time.Second, "point 264 of 264 (100.0%), 33.0 points/s"},
		{5, 0, time.Second, "point 5, 5.0 points/s"},
	} {
		if got := progressLine(tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}
