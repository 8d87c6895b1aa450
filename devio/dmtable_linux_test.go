package devio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tableKernel is a device-mapper that keeps tables: a live and an inactive
// table per device and whether it is suspended, like drivers/md/dm-ioctl.c
// (load: populate_table; suspend and resume: do_suspend, do_resume;
// status with DM_STATUS_TABLE_FLAG: the targets' parameters). It reads the
// requests through x/sys's C-layout structs.
type tableKernel struct {
	devs  map[string]*tableDev
	calls []string // "op name"
	fail  map[string]int
}

type tableDev struct {
	live, inactive []DMTarget
	suspended      bool
	destroyed      [][]DMTarget // live tables replaced, in order
}

func (k *tableKernel) ioctl(req uintptr, buf []byte) error {
	h := (*unix.DmIoctl)(unsafe.Pointer(&buf[0]))
	if h.Version[0] != unix.DM_VERSION_MAJOR || int(h.Data_size) != len(buf) || h.Data_start != unix.SizeofDmIoctl || h.Data_start > h.Data_size {
		return unix.EINVAL
	}
	name := cString(h.Name[:])
	op := map[uintptr]string{unix.DM_TABLE_LOAD: "load", unix.DM_TABLE_CLEAR: "clear", unix.DM_TABLE_STATUS: "table", unix.DM_DEV_SUSPEND: "resume"}[req]
	if req == unix.DM_DEV_SUSPEND && h.Flags&unix.DM_SUSPEND_FLAG != 0 {
		op = "suspend"
	}
	k.calls = append(k.calls, op+" "+name)
	if k.fail[op] > 0 {
		k.fail[op]--
		return unix.EIO
	}
	d := k.devs[name]
	if d == nil {
		return unix.ENXIO
	}
	switch req {
	case unix.DM_TABLE_LOAD:
		var ts []DMTarget
		spec := buf[h.Data_start:]
		for i := 0; i < int(h.Target_count); i++ {
			s := (*unix.DmTargetSpec)(unsafe.Pointer(&spec[0]))
			params := spec[unix.SizeofDmTargetSpec:]
			end := bytes.IndexByte(params, 0)
			if end < 0 || s.Length == 0 {
				return unix.EINVAL
			}
			typ := cString(s.Target_type[:])
			if typ != "log-writes" && typ != "linear" {
				return unix.EINVAL // unknown target type
			}
			ts = append(ts, DMTarget{Start: s.Sector_start, Length: s.Length, Type: typ, Status: string(params[:end])})
			if i+1 < int(h.Target_count) {
				if int(s.Next) < unix.SizeofDmTargetSpec || int(s.Next) >= len(spec) {
					return unix.EINVAL
				}
				spec = spec[s.Next:]
			}
		}
		d.inactive = ts
	case unix.DM_TABLE_CLEAR:
		d.inactive = nil
	case unix.DM_DEV_SUSPEND:
		if h.Flags&unix.DM_SUSPEND_FLAG != 0 {
			d.suspended = true
			return nil
		}
		if d.inactive != nil {
			if !d.suspended {
				return unix.EINVAL // the kernel suspends first; the fake wants it explicit
			}
			d.destroyed = append(d.destroyed, d.live)
			d.live, d.inactive = d.inactive, nil
		}
		d.suspended = false
	case unix.DM_TABLE_STATUS:
		if h.Flags&unix.DM_STATUS_TABLE_FLAG == 0 {
			return unix.EINVAL
		}
		table := d.live
		if h.Flags&unix.DM_QUERY_INACTIVE_TABLE_FLAG != 0 {
			table = d.inactive
		}
		putTargets(h, buf, table) // dm_linux_test.go
	default:
		return unix.ENOTTY
	}
	return nil
}

func withTableKernel(t *testing.T) *tableKernel {
	k := &tableKernel{devs: map[string]*tableDev{
		"vol": {live: []DMTarget{{Start: 0, Length: 2048, Type: "log-writes", Status: "254:0 254:16"}}},
	}, fail: map[string]int{}}
	fakeIoctl(t, k.ioctl)
	return k
}

func TestDMReload(t *testing.T) {
	k := withTableKernel(t)
	got, err := DMTable("vol")
	if err != nil || len(got) != 1 || got[0].Status != "254:0 254:16" || got[0].Type != "log-writes" || got[0].Length != 2048 {
		t.Fatalf("DMTable = %+v, %v", got, err)
	}
	next := []DMTarget{{Start: 0, Length: 2048, Type: "log-writes", Status: "254:0 /dev/vdc"}}
	if err := DMReload("vol", next); err != nil {
		t.Fatal(err)
	}
	d := k.devs["vol"]
	if d.suspended || d.inactive != nil || len(d.live) != 1 || d.live[0] != next[0] || len(d.destroyed) != 1 {
		t.Fatalf("after DMReload: %+v", d)
	}
	if want := "table vol,load vol,suspend vol,resume vol"; strings.Join(k.calls, ",") != want {
		t.Fatalf("calls %q, want %q", k.calls, want)
	}
	// Two targets: the specs chain by next.
	two := []DMTarget{{Start: 0, Length: 1024, Type: "linear", Status: "254:0 0"}, {Start: 1024, Length: 1024, Type: "linear", Status: "254:1 8"}}
	if err := DMReload("vol", two); err != nil {
		t.Fatal(err)
	}
	if got, _ := DMTable("vol"); len(got) != 2 || got[0] != two[0] || got[1] != two[1] {
		t.Fatalf("two targets: %+v", got)
	}
}

func TestDMReloadFailures(t *testing.T) {
	orig := []DMTarget{{Start: 0, Length: 2048, Type: "log-writes", Status: "254:0 254:16"}}
	next := []DMTarget{{Start: 0, Length: 2048, Type: "log-writes", Status: "254:0 254:32"}}
	for _, tc := range []struct {
		name      string
		fail      map[string]int
		targets   []DMTarget
		wantLive  []DMTarget
		wantCalls string
	}{
		{"load refused", nil, []DMTarget{{Length: 8, Type: "nosuch", Status: "x"}}, orig, "load vol"},
		{"load fails", map[string]int{"load": 1}, next, orig, "load vol"},
		{"suspend fails", map[string]int{"suspend": 1}, next, orig, "load vol,suspend vol,clear vol"},
		{"resume fails once", map[string]int{"resume": 1}, next, next, "load vol,suspend vol,resume vol,resume vol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := withTableKernel(t)
			for op, n := range tc.fail {
				k.fail[op] = n
			}
			err := DMReload("vol", tc.targets)
			if err == nil || !strings.Contains(err.Error(), "vol") {
				t.Fatalf("DMReload: %v, want an error naming the device", err)
			}
			d := k.devs["vol"]
			if d.suspended || d.inactive != nil || len(d.live) != 1 || d.live[0] != tc.wantLive[0] {
				t.Fatalf("after a failed DMReload: %+v", d)
			}
			if got := strings.Join(k.calls, ","); got != tc.wantCalls {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
		})
	}
	k := withTableKernel(t)
	if err := DMReload("missing", orig); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("DMReload of a missing device: %v", err)
	}
	for _, bad := range [][]DMTarget{
		nil,
		{{Start: 8, Length: 8, Type: "linear", Status: "x"}},
		{{Length: 8, Type: "linear", Status: "x"}, {Start: 9, Length: 8, Type: "linear", Status: "y"}},
		{{Length: 0, Type: "linear", Status: "x"}},
		{{Length: 8, Type: "", Status: "x"}},
		{{Length: 8, Type: strings.Repeat("t", 16), Status: "x"}},
		{{Length: 8, Type: "linear", Status: "a\x00b"}},
	} {
		k.calls = nil
		if err := DMLoad("vol", bad); err == nil || len(k.calls) != 0 {
			t.Errorf("DMLoad(%+v) = %v after %d ioctls, want refused before any", bad, err, len(k.calls))
		}
	}
}
