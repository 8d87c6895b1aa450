package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

func init() {
	register(command{name: "status", summary: "show a server's tasks: image, durable position, lag, session, last error", run: runStatus})
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "--to ADDR [--task NAME] (--tls-cert F --tls-key F [--ca F] | --psk-file F | --insecure) [--json]",
		`Asks a logship server for its tasks and prints, for each: its state in one
word, the image size, the durable position (journal, entry, window) and
when it last moved, the session shipping to it (streams, windows and bytes
received), the lag of the image behind the source, and the last error.

States (the first that holds; docs/protocol.md, "Task states"):
  Corrupt   the task's state on the server is damaged; no session can open
            it until an operator acts (docs/production.md)
  Syncing   a session holds the task and runs a block sync (logship sync)
  Reading   a session holds the task and only reads its image (verify, recover)
  CaughtUp  a session ships to the task and its source's last report, made
            in this session less than 10s ago, counts nothing not yet durable
  Shipping  a session ships to the task, with entries to ship or in flight
            (or no report from its source yet)
  Error     no session holds the task and its last session failed (last error)
  Behind    no session holds the task, its last one ended without error, but
            its source's last report counted entries not yet durable
  Idle      no session holds the task and nothing is known to remain

The lag comes from the source: a running 'logship ship' reports every second
how far its journal goes. It is shown as entries not yet durable, split into
those TO SHIP (in the log, not yet read by the source) and those IN FLIGHT
(read by the source, in its open window, on the wire or on the server, not
yet durable); the log bytes from the first entry not yet durable to the end
of the log; and the age of the oldest entry in flight; with the age of the
report. Without a report (no ship running, or an older one) the lag is
unknown.

--wait-caught-up (with --task) waits until the ship has made durable
everything the log-writes target had logged when the command started: a
report of the ship that arrived at least 1.5 s after the start shows no lag
in entries. With a frozen or quiet file system, this is the moment to stop
the ship and verify (docs/production.md). It gives up after --timeout.

With --json, one JSON object per task per line (control.TaskStatus, see
docs/protocol.md section 7.1). Exit status 3 when the server cannot be
reached, --task names no task, or --wait-caught-up timed out.`)
	var (
		to   = fs.String("to", "", "server address, host:port")
		task = fs.String("task", "", "show only this task")
	)
	auth := addAuthFlags(fs)
	var (
		timeout  = fs.Duration("timeout", 10*time.Second, "give up after this long")
		caughtUp = fs.Bool("wait-caught-up", false, "with --task: wait until everything logged before now is durable")
		jsonOut  = fs.Bool("json", false, "one JSON object per task per line")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *to == "" {
		return usagef("--to is required")
	}
	if err := checkStatusFlags(*to, *task); err != nil {
		return err
	}
	cfg := parallel.ClientConfig{Streams: 1}
	if err := auth.apply(&cfg); err != nil {
		return err
	}
	if *caughtUp && *task == "" {
		return usagef("--wait-caught-up needs --task")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var st control.Status
	var err error
	if *caughtUp {
		st, err = waitCaughtUp(ctx, *to, *task, cfg)
	} else {
		st, err = fetchStatus(ctx, *to, cfg)
	}
	if err != nil {
		return err
	}
	tasks := st.Tasks
	if *task != "" {
		tasks = nil
		for _, ts := range st.Tasks {
			if ts.Name == *task {
				tasks = append(tasks, ts)
			}
		}
		if len(tasks) == 0 {
			return fmt.Errorf("server %s has no task %q", *to, *task)
		}
	}
	now := time.Now()
	for _, ts := range tasks {
		if *jsonOut {
			b, _ := json.Marshal(ts)
			fmt.Fprintf(e.stdout, "%s\n", b)
			continue
		}
		printTaskStatus(e.stdout, ts, now)
	}
	if !*jsonOut && len(tasks) == 0 {
		fmt.Fprintf(e.stdout, "no tasks\n")
	}
	return nil
}

// caughtUpSettle: a report that arrived this long after the wait began
// reflects what the target had logged when it began (the ship reads the
// target's status every tick and reports every second).
const caughtUpSettle = 1500 * time.Millisecond

// waitCaughtUp polls the status until task shows no lag in a report that
// arrived caughtUpSettle after the start, or ctx ends.
func waitCaughtUp(ctx context.Context, addr, task string, cfg parallel.ClientConfig) (control.Status, error) {
	start := time.Now()
	var last control.TaskStatus
	for {
		st, err := fetchStatus(ctx, addr, cfg)
		if err != nil && ctx.Err() == nil {
			return st, err
		}
		for _, ts := range st.Tasks {
			if ts.Name != task {
				continue
			}
			last = ts
			if l := ts.Lag; l != nil && l.Entries == 0 &&
				time.Since(start)-time.Duration(l.ReportAge*float64(time.Second)) >= caughtUpSettle {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			why := "no report from a ship"
			if l := last.Lag; l != nil {
				why = fmt.Sprintf("lag %d entries, %d bytes, %.1fs in a report %.1fs old", l.Entries, l.Bytes, l.Seconds, l.ReportAge)
			}
			return st, fmt.Errorf("task %s: not caught up after %v: %s", task, time.Since(start).Round(time.Millisecond), why)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fetchStatus makes the status call on a session that names no task.
func fetchStatus(ctx context.Context, addr string, cfg parallel.ClientConfig) (control.Status, error) {
	var st control.Status
	sess, err := parallel.Dial(ctx, addr, cfg)
	if err != nil {
		return st, err
	}
	defer sess.Close()
	resp, err := sess.Call(ctx, control.Marshal(control.Request{Op: control.OpStatus}))
	if err != nil {
		return st, fmt.Errorf("status call to %s: %w", addr, err)
	}
	if err := control.Unmarshal(resp, &st); err != nil {
		return st, fmt.Errorf("status reply of %s: %w", addr, err)
	}
	return st, nil
}

// stateWhy says in a few words what a state means, for people.
var stateWhy = map[control.TaskState]string{
	control.StateCorrupt:  "damaged on the server; an operator must act",
	control.StateSyncing:  "a block sync is running",
	control.StateReading:  "a verify or recover session reads the image",
	control.StateCaughtUp: "shipping; everything the source reported is durable",
	control.StateShipping: "shipping; entries remain",
	control.StateError:    "no session; the last one failed",
	control.StateBehind:   "no session; entries remained when it ended",
	control.StateIdle:     "no session; nothing known to remain",
}

// stateLine is the state of ts for people (the word comes from the
// server: through peer).
func stateLine(ts control.TaskStatus) string {
	if ts.State == "" {
		return "unknown (the server does not say)"
	}
	if why := stateWhy[ts.State]; why != "" {
		return fmt.Sprintf("%s (%s)", ts.State, why)
	}
	return peer(string(ts.State))
}

// printTaskStatus prints one task for people. Every string in ts comes
// from the server, or through it from a source: each goes through peer,
// so that none can forge lines or send the terminal escapes.
func printTaskStatus(w io.Writer, ts control.TaskStatus, now time.Time) {
	fmt.Fprintf(w, "task %s\n", peer(ts.Name))
	fmt.Fprintf(w, "  state:    %s\n", stateLine(ts))
	fmt.Fprintf(w, "  image:    %s (%d bytes)\n", humanize.IBytes(uint64(max(ts.ImageSize, 0))), ts.ImageSize)
	d := ts.Durable
	line := fmt.Sprintf("entry %d, window %d of journal %s", d.NextEntry, d.NextWindow, orNone(peer(d.Journal)))
	if !ts.DurableTime.IsZero() {
		line += fmt.Sprintf(", moved %s ago", ago(now.Sub(ts.DurableTime)))
	}
	fmt.Fprintf(w, "  durable:  %s\n", line)
	if s := ts.Session; s != nil {
		var per []string
		for _, b := range s.StreamBytes {
			per = append(per, humanize.IBytes(uint64(max(b, 0))))
		}
		fmt.Fprintf(w, "  session:  %s, %d streams (%s), %s, up %s: %d windows, %s received\n",
			peer(s.ID), s.Streams, strings.Join(per, " "), peer(s.Auth), ago(now.Sub(s.Started)), s.Windows, humanize.IBytes(uint64(max(s.Bytes, 0))))
	} else {
		fmt.Fprintf(w, "  session:  none\n")
	}
	if r := ts.Source; r != nil {
		src := fmt.Sprintf("log %s", orNone(peer(r.Log)))
		if r.Seq > 0 {
			src += fmt.Sprintf(" (rotation %d)", r.Seq)
		}
		src += fmt.Sprintf(", head entry %d, read %d", r.Head, r.Read)
		if r.LogSize > 0 && r.LogUsed > 0 {
			src += fmt.Sprintf(", log %.1f%% used (%s of %s)", 100*float64(r.LogUsed)/float64(r.LogSize),
				humanize.IBytes(uint64(r.LogUsed)), humanize.IBytes(uint64(r.LogSize)))
		}
		fmt.Fprintf(w, "  source:   %s\n", src)
		if r.LoggingDisabled {
			fmt.Fprintf(w, "  WARNING:  the log-writes target reports logging_disabled: writes reach the device unlogged; the image needs a resync\n")
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  source error: %s\n", peer(r.Error))
		}
	}
	if l := ts.Lag; l != nil {
		fmt.Fprintf(w, "  lag:      %s\n", lagLine(*l, ts.Session == nil))
	} else {
		fmt.Fprintf(w, "  lag:      unknown (no report from a source)\n")
	}
	if ts.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", peer(ts.LastError))
	}
	if ts.Corrupt != "" {
		fmt.Fprintf(w, "  CORRUPT:  %s\n", peer(ts.Corrupt))
	}
}

// peer makes a string a peer sent safe to print: as it is when every rune
// is printable (strconv.IsPrint: no control characters, newlines,
// terminal escapes or invisible format characters), else quoted with
// those escaped (strconv.Quote).
func peer(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// lagLine is a lag for people: entries not yet durable, to ship and in
// flight, log bytes, the age of the oldest entry in flight, and the age of
// the report (noting it is the last of a session that has ended).
func lagLine(l control.Lag, ended bool) string {
	var s string
	switch {
	case l.Entries < 0:
		s = "unknown entries (the source reports another journal)"
	case l.ToShip < 0 || l.InFlight < 0 || l.ToShip+l.InFlight != l.Entries:
		s = fmt.Sprintf("%d entries not yet durable", l.Entries) // an older server
	default:
		s = fmt.Sprintf("%d entries not yet durable: %d to ship, %d in flight", l.Entries, l.ToShip, l.InFlight)
	}
	s += fmt.Sprintf("; %s of log", humanize.IBytes(uint64(max(l.Bytes, 0))))
	if l.Seconds > 0 {
		s += fmt.Sprintf("; oldest in flight %.1fs", l.Seconds)
	}
	report := "reported"
	if ended {
		report = "last report of a session that has ended,"
	}
	return s + fmt.Sprintf(" (%s %s ago)", report, ago(time.Duration(l.ReportAge*float64(time.Second))))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// ago rounds d for people.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
