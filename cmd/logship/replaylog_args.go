package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// replay-log's command line, read the way glibc's getopt_long reads it with
// replay-log's option table (xfstests src/log-writes/replay-log.c): long
// options may be abbreviated to any prefix that picks one option, or several
// options that getopt_long treats as one (same argument kind: `--next` is
// --next-flush, `--l` is --log, `--start` is --start-entry, `--end` is
// --end-mark); an argument comes as `--opt=ARG` or as the next word;
// arguments that are not options are skipped (all of them, or, with
// POSIXLY_CORRECT set, every word from the first one on); `--` ends the
// options. docs/xfstests.md lists the rules.

// rlOpt is one of replay-log's long options.
type rlOpt struct {
	name   string
	hasArg bool
	isV    bool // --verbose: getopt returns 'v' for it, like -v
}

// rlOpts is replay-log's option table, in its order (abbreviations resolve
// to the first match). number-entries is not in replay-log's table (its
// usage names it, its table has num-entries, so replay-log refuses the name
// it documents); we take both: see docs/xfstests.md.
var rlOpts = []rlOpt{
	{name: "next-flush"},
	{name: "next-fua"},
	{name: "start-entry", hasArg: true},
	{name: "end-mark", hasArg: true},
	{name: "log", hasArg: true},
	{name: "replay", hasArg: true},
	{name: "limit", hasArg: true},
	{name: "verbose", isV: true},
	{name: "find"},
	{name: "num-entries"},
	{name: "no-discard"},
	{name: "fsck", hasArg: true},
	{name: "check", hasArg: true},
	{name: "start-mark", hasArg: true},
	{name: "start-sector", hasArg: true},
	{name: "end-sector", hasArg: true},
	{name: "number-entries"},
}

// rlArgs is a parsed replay-log command line.
type rlArgs struct {
	log, replay   string
	haveLog       bool
	haveReplay    bool
	nextFlush     bool
	nextFUA       bool
	startEntry    uint64
	startMark     string
	haveStartMark bool
	endMark       string
	haveEndMark   bool
	limit         uint64
	find          bool
	numEntries    bool
	noDiscard     bool
	fsck          string
	haveFsck      bool
	check         rlCheck
	checkNumber   uint64
	startSector   uint64
	endSector     uint64
	verbose       int
}

// rlCheck is replay-log's --check mode.
type rlCheck int

const (
	checkNone rlCheck = iota
	checkNumber
	checkFUA
	checkFlush
	checkDiscard
)

// rlMaxMark is the length replay-log cuts --start-mark and --end-mark to:
// strndup(optarg, 4097 - sizeof(struct log_write_entry)), the struct being
// 40 bytes with its padding.
const rlMaxMark = 4097 - 40

// rlExit is a replay-log exit: the status, its message already printed.
type rlExit int

func (e rlExit) Error() string { return fmt.Sprintf("replay-log exit status %d", int(e)) }

// rlUsage prints replay-log's usage and returns its exit (status 1).
func rlUsage(w io.Writer) error {
	fmt.Fprint(w, `Usage: replay-log --log <logfile> [options]
	--replay <device> - replay onto a specific device
	--limit <number> - number of entries to replay
	--next-flush - replay to/find the next flush
	--next-fua - replay to/find the next fua
	--start-entry <entry> - start at the given entry #
	--start-mark <mark> - mark to start from
	--end-mark <mark> - replay to/find the given mark
	--find - put replay-log in find mode, will search based on the other options
	--number-entries - print the number of entries in the log
	--no-discard - don't process discard entries
	--fsck - the fsck command to run, must specify --check
	--check [<number>|flush|fua|discard] when to check the file system, mush specify --fsck
	--start-sector <sector> - replay ops on region from <sector> onto <device>
	--end-sector <sector> - replay ops on region to <sector> onto <device>
	-v or --verbose - print replayed ops
	-vv - print also skipped ops
`)
	return rlExit(1)
}

// parseReplayLogArgs reads args as replay-log's getopt_long loop does.
// Mistakes print getopt's message and the usage (exit 1), or replay-log's
// "Invalid entry number" / "Invalid sector number" (exit 1).
func parseReplayLogArgs(prog string, args []string, stderr io.Writer) (rlArgs, error) {
	a := rlArgs{endSector: math.MaxUint64}
	posix := os.Getenv("POSIXLY_CORRECT") != ""
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return a, nil
		case strings.HasPrefix(arg, "--"):
			name, val, hasVal := strings.Cut(arg[2:], "=")
			o, err := rlLookup(prog, name, stderr)
			if err != nil {
				return a, err
			}
			switch {
			case o.hasArg && !hasVal:
				if i+1 >= len(args) {
					fmt.Fprintf(stderr, "%s: option '--%s' requires an argument\n", prog, o.name)
					return a, rlUsage(stderr)
				}
				i++
				val = args[i]
			case !o.hasArg && hasVal:
				fmt.Fprintf(stderr, "%s: option '--%s' doesn't allow an argument\n", prog, o.name)
				return a, rlUsage(stderr)
			}
			if err := a.set(o, val, stderr); err != nil {
				return a, err
			}
		case len(arg) > 1 && arg[0] == '-':
			for _, c := range arg[1:] {
				if c != 'v' {
					fmt.Fprintf(stderr, "%s: invalid option -- '%c'\n", prog, c)
					return a, rlUsage(stderr)
				}
				a.verbose++
			}
		default: // not an option: replay-log never looks at these
			if posix {
				return a, nil
			}
		}
	}
	return a, nil
}

// rlLookup finds the option a --name names, as getopt_long does: an exact
// name, else the first option the name is a prefix of, unless a later one
// differs from it in argument kind (ambiguous).
func rlLookup(prog, name string, stderr io.Writer) (rlOpt, error) {
	var found *rlOpt
	var ambig []string
	for i := range rlOpts {
		o := &rlOpts[i]
		if o.name == name {
			return *o, nil
		}
		if !strings.HasPrefix(o.name, name) {
			continue
		}
		if found == nil {
			found = o
			continue
		}
		if o.hasArg != found.hasArg || o.isV != found.isV {
			if len(ambig) == 0 {
				ambig = append(ambig, "'--"+found.name+"'")
			}
			ambig = append(ambig, "'--"+o.name+"'")
		}
	}
	switch {
	case len(ambig) > 0:
		fmt.Fprintf(stderr, "%s: option '--%s' is ambiguous; possibilities: %s\n", prog, name, strings.Join(ambig, " "))
		return rlOpt{}, rlUsage(stderr)
	case found == nil:
		fmt.Fprintf(stderr, "%s: unrecognized option '--%s'\n", prog, name)
		return rlOpt{}, rlUsage(stderr)
	}
	return *found, nil
}

// set applies one option, as the body of replay-log's option switch does.
func (a *rlArgs) set(o rlOpt, val string, stderr io.Writer) error {
	number := func(p *uint64, what string) error {
		n, ok := strtoull(val)
		if !ok {
			fmt.Fprintf(stderr, "Invalid %s number\n", what)
			return rlExit(1)
		}
		*p = n
		return nil
	}
	cut := func(s string) string {
		if len(s) > rlMaxMark {
			return s[:rlMaxMark]
		}
		return s
	}
	switch o.name {
	case "verbose":
		a.verbose++
	case "next-flush":
		a.nextFlush = true
	case "next-fua":
		a.nextFUA = true
	case "start-entry":
		return number(&a.startEntry, "entry")
	case "start-mark":
		a.startMark, a.haveStartMark = cut(val), true
	case "end-mark":
		a.endMark, a.haveEndMark = cut(val), true
	case "log":
		a.log, a.haveLog = val, true
	case "replay":
		a.replay, a.haveReplay = val, true
	case "limit":
		return number(&a.limit, "entry")
	case "find":
		a.find = true
	case "num-entries", "number-entries":
		a.numEntries = true
	case "no-discard":
		a.noDiscard = true
	case "fsck":
		a.fsck, a.haveFsck = val, true
	case "check":
		switch val {
		case "flush":
			a.check = checkFlush
		case "fua":
			a.check = checkFUA
		case "discard":
			a.check = checkDiscard
		default:
			a.check = checkNumber
			n, ok := strtoull(val)
			if !ok || n == 0 {
				fmt.Fprintf(stderr, "Invalid entry number\n")
				return rlExit(1)
			}
			a.checkNumber = n
		}
	case "start-sector":
		return number(&a.startSector, "sector")
	case "end-sector":
		return number(&a.endSector, "sector")
	}
	return nil
}

// strtoull reads s as C's strtoull(s, &end, 0) followed by replay-log's
// test *end == '\0': leading white space, an optional sign (a minus negates
// modulo 2^64), 0x for hex and 0 for octal; ok is false when characters are
// left over. An empty string, or one with no digits at all only when it is
// empty, is 0. Overflow gives the largest value, as strtoull does.
func strtoull(s string) (n uint64, ok bool) {
	if s == "" {
		return 0, true // end == s, *end == '\0'
	}
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	switch {
	case i+2 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && hexDigit(s[i+2]) >= 0:
		base, i = 16, i+2
	case i < len(s) && s[i] == '0':
		base = 8
	}
	start, overflow := i, false
	for ; i < len(s); i++ {
		d := hexDigit(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		if n > (math.MaxUint64-uint64(d))/base {
			overflow = true
		}
		n = n*base + uint64(d)
	}
	if i == start { // no digits: end is s itself
		return 0, false
	}
	switch {
	case overflow:
		n = math.MaxUint64
	case neg:
		n = -n
	}
	return n, i == len(s)
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
