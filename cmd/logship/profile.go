package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"

	"github.com/spf13/pflag"
)

// profileFlags are --cpuprofile, --trace, --blockprofile, --mutexprofile
// and --memprofile, for the commands whose speed is measured (serve, ship,
// replay). Each names a file written when the command ends.
type profileFlags struct {
	cpu, trace, block, mutex, mem *string
}

func addProfileFlags(fs *pflag.FlagSet) profileFlags {
	return profileFlags{
		cpu:   fs.String("cpuprofile", "", "write a CPU profile to this file (go tool pprof)"),
		trace: fs.String("trace", "", "write an execution trace to this file (go tool trace)"),
		block: fs.String("blockprofile", "", "write a profile of where goroutines blocked to this file"),
		mutex: fs.String("mutexprofile", "", "write a profile of mutex contention to this file"),
		mem:   fs.String("memprofile", "", "write a heap profile (allocations) to this file at the end"),
	}
}

// start starts the profiles asked for. The returned stop writes them out;
// it must be called once, when the command ends, and reports the first
// error.
func (p profileFlags) start() (stop func() error, err error) {
	var stops []func() error
	stopAll := func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (func() error, error) {
		stopAll()
		return nil, err
	}
	if *p.cpu != "" {
		stop, err := startToFile("cpuprofile", *p.cpu, pprof.StartCPUProfile, pprof.StopCPUProfile)
		if err != nil {
			return fail(err)
		}
		stops = append(stops, stop)
	}
	if *p.trace != "" {
		stop, err := startToFile("trace", *p.trace, trace.Start, trace.Stop)
		if err != nil {
			return fail(err)
		}
		stops = append(stops, stop)
	}
	if *p.block != "" {
		runtime.SetBlockProfileRate(1)
		stops = append(stops, func() error { return writeProfile("block", *p.block) })
	}
	if *p.mutex != "" {
		runtime.SetMutexProfileFraction(1)
		stops = append(stops, func() error { return writeProfile("mutex", *p.mutex) })
	}
	if *p.mem != "" {
		stops = append(stops, func() error { runtime.GC(); return writeProfile("allocs", *p.mem) })
	}
	return stopAll, nil
}

// startToFile creates path and starts writing a CPU profile or trace to it
// with start (refusals named by --flag); the returned stop ends it with
// end and closes the file.
func startToFile(flag, path string, start func(io.Writer) error, end func()) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return func() error { end(); return f.Close() }, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing the %s profile to %s: %w", name, path, err)
	}
	return f.Close()
}

// parseProfiled parses the flags of a command with profile flags pf, then
// starts the profiles asked for; the returned function writes them out and
// reports a failure on e's stderr (the command's own result stands).
func parseProfiled(e *env, fs *pflag.FlagSet, args []string, pf profileFlags) (func(), error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	return startProfiles(e, pf)
}

// startProfiles starts the profiles of pf; the returned function writes
// them out and reports a failure on e's stderr (the command's own result
// stands).
func startProfiles(e *env, pf profileFlags) (func(), error) {
	stop, err := pf.start()
	if err != nil {
		return nil, err
	}
	return func() {
		if err := stop(); err != nil {
			fmt.Fprintf(e.stderr, "logship: profiles: %v\n", err)
		}
	}, nil
}
