package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

func init() {
	register(command{name: "version", summary: "print logship's version and the revision it was built from", run: runVersion})
}

// version and revision may be set by the build (the Makefile does):
//
//	-ldflags "-X main.version=v1.2.3 -X main.revision=abc123"
//
// Without them, the module version and the VCS revision come from the
// build info that the go command embeds.
var (
	version  string
	revision string
)

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "", "Prints the version of logship (logship --version does the same).")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("version takes no arguments")
	}
	printVersion(e.stdout)
	return nil
}

// printVersion prints "logship VERSION (REVISION[, modified], GOVERSION)".
func printVersion(w io.Writer) {
	v, rev, dirty, gov := version, revision, false, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		gov = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown revision"
	} else if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += ", modified"
	}
	if gov != "" {
		rev += ", " + gov
	}
	fmt.Fprintf(w, "logship %s (%s)\n", v, rev)
}
