package replica

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTask(t *testing.T) {
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
