package main

import (
	"context"
	"strings"

	"github.com/logship/logship/devio"
)

func init() {
	register(command{name: "mark", summary: "log a mark in a dm-log-writes target (dmsetup message NAME 0 mark LABEL)", run: runMark})
}

func runMark(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "mark", "--dm-name NAME LABEL",
		`Sends "mark LABEL" to the log-writes target of the device-mapper device
NAME by ioctl, as 'dmsetup message NAME 0 mark LABEL' does. The target logs a
MARK entry and rewrites its superblock, so a live reader (ship --follow) sees
every entry logged up to the mark. LABEL is one word, at most 479 bytes.`)
	dmName := fs.String("dm-name", "", "device-mapper name of the log-writes target")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one LABEL, got %d arguments", fs.NArg())
	}
	if *dmName == "" {
		return usagef("--dm-name is required")
	}
	label := fs.Arg(0)
	switch {
	case label == "":
		return usagef("the LABEL is empty")
	case len(label) > devio.MaxMarkLabel:
		return usagef("LABEL of %d bytes: at most %d", len(label), devio.MaxMarkLabel)
	case strings.ContainsAny(label, " \t\n\r\v\f\x00"):
		return usagef("LABEL %q is not one word: the target takes a label without white space", label)
	}
	return devio.Mark(*dmName, fs.Arg(0))
}
