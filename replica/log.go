package replica

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// logger returns the logger of a server configured with c: c.Log, or
// one that hands each record, as "msg key=value ...", to c.Logf, or one
// that drops everything.
func (c *Config) logger() *slog.Logger {
	switch {
	case c.Log != nil:
		return c.Log
	case c.Logf != nil:
		return slog.New(slog.NewTextHandler(logfWriter(c.Logf), &slog.HandlerOptions{
			Level: slog.LevelDebug,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
					return slog.Attr{}
				}
				return a
			},
		}))
	}
	return slog.New(discard{})
}

// logfWriter passes each line written to it to a printf-like function.
type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	s := strings.TrimSuffix(string(p), "\n")
	s = strings.TrimPrefix(s, "msg=")
	if q, err := strconv.QuotedPrefix(s); err == nil {
		if m, err := strconv.Unquote(q); err == nil {
			s = m + s[len(q):]
		}
	}
	f("%s", s)
	return len(p), nil
}

// discard is a slog.Handler that drops every record.
type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }

var _ io.Writer = logfWriter(nil)
