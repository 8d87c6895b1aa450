package devio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDMLayout checks the named offsets against the C layout of struct
// dm_ioctl, dm_target_spec and dm_target_msg, and the ioctl numbers and
// flags (status, messages, table reload), as golang.org/x/sys generated
// them from linux/dm-ioctl.h.
func TestDMLayout(t *testing.T) {
	var io unix.DmIoctl
	var spec unix.DmTargetSpec
	var msg unix.DmTargetMsg
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct dm_ioctl)", dmIoctlSize, unsafe.Sizeof(io)},
		{"sizeof(struct dm_ioctl)", dmIoctlSize, unix.SizeofDmIoctl},
		{"version", dmVersionOff, unsafe.Offsetof(io.Version)},
		{"data_size", dmDataSizeOff, unsafe.Offsetof(io.Data_size)},
		{"data_start", dmDataStartOff, unsafe.Offsetof(io.Data_start)},
		{"target_count", dmTargetCountOff, unsafe.Offsetof(io.Target_count)},
		{"open_count", dmOpenCountOff, unsafe.Offsetof(io.Open_count)},
		{"flags", dmFlagsOff, unsafe.Offsetof(io.Flags)},
		{"event_nr", dmEventNrOff, unsafe.Offsetof(io.Event_nr)},
		{"dev", dmDevOff, unsafe.Offsetof(io.Dev)},
		{"name", dmNameOff, unsafe.Offsetof(io.Name)},
		{"name len", dmNameLen, unsafe.Sizeof(io.Name)},
		{"DM_NAME_LEN", dmNameLen, unix.DM_NAME_LEN},
		{"uuid", dmUUIDOff, unsafe.Offsetof(io.Uuid)},
		{"DM_UUID_LEN", dmUUIDLen, unix.DM_UUID_LEN},
		{"data", dmDataOff, unsafe.Offsetof(io.Data)},
		{"sizeof(struct dm_target_spec)", dmSpecSize, unsafe.Sizeof(spec)},
		{"sizeof(struct dm_target_spec)", dmSpecSize, unix.SizeofDmTargetSpec},
		{"sector_start", dmSpecSectorOff, unsafe.Offsetof(spec.Sector_start)},
		{"length", dmSpecLengthOff, unsafe.Offsetof(spec.Length)},
		{"status", dmSpecStatusOff, unsafe.Offsetof(spec.Status)},
		{"next", dmSpecNextOff, unsafe.Offsetof(spec.Next)},
		{"target_type", dmSpecTypeOff, unsafe.Offsetof(spec.Target_type)},
		{"DM_MAX_TYPE_NAME", dmTypeLen, unsafe.Sizeof(spec.Target_type)},
		{"sizeof(struct dm_target_msg)", dmMsgTextOff, unsafe.Sizeof(msg)},
		{"dm_target_msg.sector", dmMsgSectorOff, unsafe.Offsetof(msg.Sector)},
		{"DM_VERSION_MAJOR", dmVersionMajor, unix.DM_VERSION_MAJOR},
		{"DM_BUFFER_FULL_FLAG", dmBufferFullFlag, unix.DM_BUFFER_FULL_FLAG},
		{"DM_TABLE_STATUS", dmTableStatus, unix.DM_TABLE_STATUS},
		{"DM_TARGET_MSG", dmTargetMsg, unix.DM_TARGET_MSG},
		{"DM_DEV_SUSPEND", dmDevSuspend, unix.DM_DEV_SUSPEND},
		{"DM_TABLE_LOAD", dmTableLoad, unix.DM_TABLE_LOAD},
		{"DM_TABLE_CLEAR", dmTableClear, unix.DM_TABLE_CLEAR},
		{"DM_SUSPEND_FLAG", dmSuspendFlag, unix.DM_SUSPEND_FLAG},
		{"DM_STATUS_TABLE_FLAG", dmStatusTableFlag, unix.DM_STATUS_TABLE_FLAG},
		{"DM_QUERY_INACTIVE_TABLE_FLAG", dmQueryInactiveFlag, unix.DM_QUERY_INACTIVE_TABLE_FLAG},
	} {
		if c.got != c.want {
			t.Errorf("%s: devio has %#x, C layout %#x", c.name, c.got, c.want)
		}
	}
}

func TestEncodeTargetMsg(t *testing.T) {
	t.Parallel()
	b, err := encodeTargetMsg("logw", 0, "mark mkfs")
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	want := make([]byte, 336) // 312 + 8 + len("mark mkfs")+1 = 330, padded to 8
	ne.PutUint32(want[0:], 4)
	ne.PutUint32(want[12:], 336)
	ne.PutUint32(want[16:], 312)
	copy(want[48:], "logw")
	copy(want[320:], "mark mkfs")
	if !bytes.Equal(b, want) {
		t.Errorf("encoding:\n got %x\nwant %x", b, want)
	}
	long := strings.Repeat("n", 127)
	for _, tc := range []struct {
		name, msg string
		ok        bool
	}{
		{long, "mark x", true},
		{long + "n", "mark x", false},
		{"", "mark x", false},
		{"a/b", "mark x", false},
		{"a\x00b", "mark x", false},
		{"logw", "", false},
		{"logw", "mark a\x00b", false},
		{"logw", strings.Repeat("m", dmMessageMax+1), false},
	} {
		_, err := encodeTargetMsg(tc.name, 0, tc.msg)
		if (err == nil) != tc.ok {
			t.Errorf("encodeTargetMsg(%.20q, %.20q): %v, want ok %v", tc.name, tc.msg, err, tc.ok)
		}
	}
}

// fakeDM is a device-mapper control node in memory. It reads requests and
// writes answers through x/sys's C-layout structs, not devio's offsets, so it
// checks one against the other, and it answers status like the kernel's
// retrieve_status (drivers/md/dm-ioctl.c).
type fakeDM struct {
	targets  map[string][]DMTarget
	messages []string // "name sector message"
	calls    int
}

func (k *fakeDM) ioctl(req uintptr, buf []byte) error {
	k.calls++
	h := (*unix.DmIoctl)(unsafe.Pointer(&buf[0]))
	if h.Version[0] != unix.DM_VERSION_MAJOR || int(h.Data_size) != len(buf) || h.Data_start < unix.SizeofDmIoctl-7 || h.Data_start > h.Data_size {
		return unix.EINVAL
	}
	name := cString(h.Name[:])
	targets, ok := k.targets[name]
	if !ok {
		return unix.ENXIO
	}
	h.Version = [3]uint32{4, 48, 0}
	switch req {
	case unix.DM_TARGET_MSG:
		m := (*unix.DmTargetMsg)(unsafe.Pointer(&buf[h.Data_start]))
		text := buf[h.Data_start+uint32(unsafe.Sizeof(*m)) : h.Data_size]
		i := bytes.IndexByte(text, 0)
		if i < 0 {
			return unix.EINVAL
		}
		k.messages = append(k.messages, name+" "+string(rune('0'+m.Sector))+" "+string(text[:i]))
		return nil
	case unix.DM_TABLE_STATUS:
		if h.Flags&unix.DM_STATUS_TABLE_FLAG != 0 {
			return unix.EINVAL // the fake only answers status
		}
		putTargets(h, buf, targets)
		return nil
	}
	return unix.ENOTTY
}

func withFakeDM(t *testing.T) *fakeDM {
	k := &fakeDM{targets: map[string][]DMTarget{
		"logw":  {{Start: 0, Length: 409600, Type: "log-writes", Status: "123 4567"}},
		"full":  {{Start: 0, Length: 8, Type: "log-writes", Status: "77 9000 logging_disabled"}},
		"empty": nil,
		"multi": {
			{Start: 0, Length: 100, Type: "linear", Status: ""},
			{Start: 100, Length: 50, Type: "striped", Status: "2 254:1 254:2 1 AA"},
			{Start: 150, Length: 1, Type: "big", Status: strings.Repeat("s", 40<<10)},
		},
	}}
	fakeIoctl(t, k.ioctl)
	return k
}

// fakeIoctl makes devio send its device-mapper ioctls to f until the test
// ends.
func fakeIoctl(t *testing.T, f func(req uintptr, buf []byte) error) {
	old := dmIoctl
	dmIoctl = f
	t.Cleanup(func() { dmIoctl = old })
}

// putTargets writes targets into the answer buf (header h) as the kernel's
// retrieve_status does: a dm_target_spec and a NUL-terminated string each,
// 8-byte aligned, DM_BUFFER_FULL_FLAG when they do not fit, data_size the
// bytes used.
func putTargets(h *unix.DmIoctl, buf []byte, targets []DMTarget) {
	out := buf[h.Data_start:]
	pos, used := 0, 0
	for _, tg := range targets {
		if len(out)-pos <= unix.SizeofDmTargetSpec+len(tg.Status) {
			h.Flags |= unix.DM_BUFFER_FULL_FLAG
			break
		}
		spec := (*unix.DmTargetSpec)(unsafe.Pointer(&out[pos]))
		spec.Sector_start, spec.Length = tg.Start, tg.Length
		copy(spec.Target_type[:], tg.Type)
		pos += unix.SizeofDmTargetSpec
		pos += copy(out[pos:], tg.Status)
		out[pos] = 0
		pos++
		used = int(h.Data_start) + pos
		pos = (pos + 7) &^ 7
		spec.Next = uint32(pos)
	}
	if used > 0 {
		h.Data_size = uint32(used)
	}
	h.Target_count = uint32(len(targets))
}

func TestDMStatus(t *testing.T) {
	k := withFakeDM(t)
	for _, tc := range []struct {
		name, want string
		wantErr    error
	}{
		{"logw", "123 4567", nil},
		{"full", "77 9000 logging_disabled", nil},
		{"multi", "", nil},
		{"missing", "", unix.ENXIO},
	} {
		got, err := DMStatus(tc.name)
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("DMStatus(%s) = %q, %v, want %q, %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := DMStatus("empty"); err == nil {
		t.Error("DMStatus of a device without a table succeeded")
	}
	k.calls = 0
	got, err := DMTargets("multi")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1] != k.targets["multi"][1] || got[2] != k.targets["multi"][2] || got[0] != k.targets["multi"][0] {
		t.Errorf("DMTargets(multi) = %+v", got)
	}
	if k.calls != 3 { // 16 KiB and 32 KiB are full, 64 KiB fits
		t.Errorf("%d ioctls, want 3 (buffer doubled twice)", k.calls)
	}
}

func TestDecodeStatusCorrupt(t *testing.T) {
	good, err := encodeStatus("x", 1024)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	for _, tc := range []struct {
		name string
		mod  func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:100] }},
		{"version", func(b []byte) []byte { ne.PutUint32(b[0:], 5); return b }},
		{"data_size", func(b []byte) []byte { ne.PutUint32(b[dmDataSizeOff:], 5000); return b }},
		{"data_start", func(b []byte) []byte { ne.PutUint32(b[dmDataStartOff:], 8); return b }},
		{"count", func(b []byte) []byte { ne.PutUint32(b[dmTargetCountOff:], 1000); return b }},
		{"unterminated", func(b []byte) []byte {
			ne.PutUint32(b[dmTargetCountOff:], 1)
			for i := dmIoctlSize + dmSpecSize; i < len(b); i++ {
				b[i] = 'x'
			}
			return b
		}},
		{"loop", func(b []byte) []byte { ne.PutUint32(b[dmTargetCountOff:], 2); return b }}, // next 0 points back
	} {
		b := tc.mod(bytes.Clone(good))
		if _, _, err := decodeStatus(b); err == nil {
			t.Errorf("%s: decodeStatus accepted a corrupt answer", tc.name)
		}
	}
}

func TestDMMessageAndMark(t *testing.T) {
	k := withFakeDM(t)
	for _, tc := range []struct {
		name, label string
		wantMsg     string // "" when refused
	}{
		{"logw", "mkfs", "logw 0 mark mkfs"},
		{"logw", "file.mark3", "logw 0 mark file.mark3"},
		{"logw", `a\b`, `logw 0 mark a\\b`},
		{"logw", "", ""},
		{"logw", "two words", ""},
		{"logw", "tab\there", ""},
		{"logw", "nl\n", ""},
		{"logw", "nbsp\u00a0x", ""},
		{"logw", "nul\x00", ""},
		{"logw", strings.Repeat("l", MaxMarkLabel), "logw 0 mark " + strings.Repeat("l", MaxMarkLabel)},
		{"logw", strings.Repeat("l", MaxMarkLabel+1), ""},
	} {
		k.messages = nil
		err := Mark(tc.name, tc.label)
		if tc.wantMsg == "" {
			if err == nil || len(k.messages) != 0 {
				t.Errorf("Mark(%q) = %v, sent %q; want refused before the ioctl", tc.label, err, k.messages)
			}
			continue
		}
		if err != nil || len(k.messages) != 1 || k.messages[0] != tc.wantMsg {
			t.Errorf("Mark(%q) = %v, sent %q, want %q", tc.label, err, k.messages, tc.wantMsg)
		}
	}
	if err := Mark("missing", "x"); !errors.Is(err, unix.ENXIO) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Mark on a missing device: %v, want ENXIO naming it", err)
	}
	if err := DMMessage("logw", "mark a b"); err != nil || k.messages[len(k.messages)-1] != "logw 0 mark a b" {
		t.Errorf("DMMessage: %v, %q", err, k.messages)
	}
}

// TestDMNoDeviceMapper runs the real ioctl path. This host's kernel has no
// device-mapper, so it must say so clearly; where there is one, asking for a
// device that does not exist must fail with ENXIO.
func TestDMNoDeviceMapper(t *testing.T) {
	_, err := DMStatus("devio-test-does-not-exist")
	if err == nil {
		t.Fatal("DMStatus of a missing device succeeded")
	}
	if _, statErr := os.Stat(dmControlPath); statErr != nil {
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "device-mapper is not available") {
			t.Errorf("without %s: %v, want a clear 'not available' error", dmControlPath, err)
		}
	} else if !errors.Is(err, unix.ENXIO) {
		t.Errorf("missing device: %v, want ENXIO", err)
	}
	if err := Mark("devio-test-does-not-exist", "x"); err == nil {
		t.Error("Mark on a missing device succeeded")
	}
}
