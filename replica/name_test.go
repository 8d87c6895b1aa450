package replica

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTask(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"db", true},
		{"vol-1.backup_2", true},
		{"a..b", true},
		{"A", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"../etc", false},
		{"a/b", false},
		{"/abs", false},
		{`a\b`, false},
		{"a b", false},
		{"a\x00b", false},
		{"tab\t", false},
		{"é", false},
		{".new-x-123456", false},
		{"~root", false},
		{"$HOME", false},
	} {
		err := CheckTask(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckTask(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrTaskName) {
			t.Errorf("CheckTask(%q) = %v, not ErrTaskName", tc.name, err)
		}
	}
}

func TestSizeName(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{512, "512 bytes"},
		{4096, "4 KiB"},
		{64 << 20, "64 MiB"},
		{1 << 40, "1 TiB"},
		{32<<20 + 4096, "32.0 MiB (33558528 bytes)"},
		{3 << 29, "1.5 GiB (1610612736 bytes)"},
		{-4096, "-4 KiB"},
	} {
		if got := sizeName(tc.n); got != tc.want {
			t.Errorf("sizeName(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
