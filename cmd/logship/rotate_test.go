package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotateUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	os.WriteFile(log, make([]byte, 1<<20), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rotate"}, 2, "--dm-name and --next-log are required"},
		{[]string{"rotate", "--dm-name", "vol"}, 2, "--dm-name and --next-log are required"},
		{[]string{"rotate", "--dm-name", "vol", "--next-log", log, "--to", "127.0.0.1:1"}, 2, "--to and --task go together"},
		{[]string{"rotate", "--dm-name", "vol", "--next-log", log, "--zero", "1"}, 2, "--zero"},
		{[]string{"rotate", "--dm-name", "vol", "--next-log", log, "x"}, 2, "unexpected arguments"},
		{[]string{"rotate", "--dm-name", "vol", "--next-log", log, "--to", "127.0.0.1:1", "--task", "t"}, 2, "choose one authentication"},
		// This host has no device-mapper (the kernel tests rotate for real).
		{[]string{"rotate", "--dm-name", "vol", "--next-log", log}, 3, "vol"},
		{[]string{"ship", "--log", log, "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 2, "go with --follow"},
		{[]string{"ship", "--follow", "--log", log, "--log", log + "2", "--rotate-at", "50%", "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 2, "--rotate-at needs --dm-name"},
		{[]string{"ship", "--follow", "--log", log, "--rotate-at", "150%", "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 2, "--rotate-at"},
		{[]string{"ship", "--follow", "--log", log, "--resync-on-gap", "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 2, "--resync-on-gap needs --dm-name"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}
