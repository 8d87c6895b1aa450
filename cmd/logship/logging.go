package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
)

// logFlags are --log-level and --log-format, for the long-running
// commands (serve, ship).
type logFlags struct {
	level, format *string
}

func addLogFlags(fs *pflag.FlagSet) logFlags {
	return logFlags{
		level:  fs.String("log-level", "info", "least important log records shown: debug, info, warn or error"),
		format: fs.String("log-format", "text", "log records on stderr as text (key=value) or json (one object per line)"),
	}
}

// logger returns the logger the flags ask for, writing to w; debug
// (e.g. -v) lowers the level to debug.
func (f logFlags) logger(w io.Writer, debug bool) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(*f.level) {
	case "debug":
		lvl = slog.LevelDebug
	case "info", "":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, usagef("--log-level %q: want debug, info, warn or error", *f.level)
	}
	if debug {
		lvl = slog.LevelDebug
	}
	o := &slog.HandlerOptions{Level: lvl}
	switch *f.format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, usagef("--log-format %q: want text or json", *f.format)
}
