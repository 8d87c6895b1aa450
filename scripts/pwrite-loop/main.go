// Command pwrite-loop is the least a replayer can do, for benchmarks: it
// reads each write entry's payload of a dm-log-writes journal into one
// buffer and pwrites it at its offset of TARGET, one entry after the
// other, then fdatasyncs TARGET. Nothing else (no windows, no discards,
// no checks). Usage: go run ./scripts/pwrite-loop JOURNAL TARGET
package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/journal"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pwrite-loop JOURNAL TARGET")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "pwrite-loop:", err)
		os.Exit(1)
	}
}

func run(jpath, tpath string) error {
	jf, err := os.Open(jpath)
	if err != nil {
		return err
	}
	defer jf.Close()
	fi, err := jf.Stat()
	if err != nil {
		return err
	}
	r, err := journal.NewReader(jf, fi.Size())
	if err != nil {
		return err
	}
	t, err := os.OpenFile(tpath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer t.Close()
	var buf []byte
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if !e.IsWrite() {
			continue
		}
		n := int(e.PayloadLen())
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := jf.ReadAt(buf[:n], e.PayloadOffset()); err != nil {
			return err
		}
		if _, err := t.WriteAt(buf[:n], e.Start()); err != nil {
			return err
		}
	}
	return unix.Fdatasync(int(t.Fd())) // as replay and dd conv=fdatasync do
}
