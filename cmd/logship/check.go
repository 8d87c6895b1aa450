package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/replica"
)

// Checks of the flags every client command shares, done before anything
// is dialed: a mistake here is a usage error (exit 2), never retried.

// checkAddr checks a server address flag: host:port with a port number.
func checkAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "missing port in address" {
			return usagef("--%s %q: no port; want host:port, e.g. %s", flag, addr, net.JoinHostPort(addr, "7000"))
		}
		return usagef("--%s %q: want host:port", flag, addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return usagef("--%s %q: port %q is not a number from 1 to 65535", flag, addr, port)
	}
	if host == "" {
		return usagef("--%s %q: no host; want host:port", flag, addr)
	}
	return nil
}

// checkTask checks a task name with the server's rules (replica.CheckTask).
func checkTask(name string) error {
	if err := replica.CheckTask(name); err != nil {
		return usagef("--task %q: a task name is 1 to %d bytes of [A-Za-z0-9._-], not starting with '.'", name, replica.MaxTaskName)
	}
	return nil
}

// checkServer checks the address and task flags of a client command.
func checkServer(addrFlag, addr, task string) error {
	if addr == "" || task == "" {
		return usagef("--%s and --task are required", addrFlag)
	}
	if err := checkAddr(addrFlag, addr); err != nil {
		return err
	}
	return checkTask(task)
}

// imageSector is the unit of an image size: the block sync's sector, and a
// multiple of every journal sector size but the largest.
const imageSector = 4096

// parseImageSize parses the size of an image: binary (GiB) or decimal (GB)
// units, a multiple of imageSector; another size is refused with the
// nearest valid ones.
func parseImageSize(flag, s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<60 {
		return 0, usagef("--%s %q: want a size, e.g. 10GiB", flag, s)
	}
	if n%imageSector != 0 {
		down := n / imageSector * imageSector
		up := down + imageSector
		near := fmt.Sprintf("%s (%d) or %s (%d)", humanize.IBytes(up), up, humanize.IBytes(down), down)
		if down == 0 {
			near = fmt.Sprintf("%s (%d)", humanize.IBytes(up), up)
		}
		return 0, usagef("--%s %q: %d bytes is not a multiple of the %d-byte sector; nearest: %s", flag, s, n, imageSector, near)
	}
	return int64(n), nil
}

// sizeDefault prints a size in help texts and messages, one way: IEC
// units with a space, exact when the size is a whole number of a unit
// ("64 MiB", "1 MiB", "512 B"), else rounded ("1.5 MiB").
func sizeDefault(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n <= 0 {
		return fmt.Sprintf("%d B", n)
	}
	i, v := 0, n
	for v%1024 == 0 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 1024 {
		return fmt.Sprintf("%d %s", v, units[i])
	}
	return humanize.IBytes(uint64(n))
}

// check refuses negative positions and counts (replay, inspect).
func (s *stopFlags) check() error {
	switch {
	case s.startEntry < 0:
		return usagef("--start-entry %d: want 0 or more", s.startEntry)
	case s.stop.Limit < 0:
		return usagef("--limit %d: want 0 (no limit) or more", s.stop.Limit)
	}
	return nil
}

// warnCredit: serve warns below this credit, which a kernel's largest
// writes need (a window holds whole entries). It does not refuse less:
// tests and small sources run with less.
const warnCredit = 4 << 20

// checkStatusFlags checks status's --to and its optional --task.
func checkStatusFlags(addr, task string) error {
	if err := checkAddr("to", addr); err != nil {
		return err
	}
	if task != "" {
		return checkTask(task)
	}
	return nil
}
