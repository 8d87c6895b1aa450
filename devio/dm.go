package devio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// The device-mapper ioctl interface, from include/uapi/linux/dm-ioctl.h
// (interface version 4). Every ioctl passes one buffer: a struct dm_ioctl
// header, then data_start bytes in, the command's payload. Fields are in the
// host's byte order.
//
//	struct dm_ioctl {                    offset size
//		__u32 version[3];                  0    12   in: what we speak; out: the kernel's
//		__u32 data_size;                  12     4   size of the whole buffer
//		__u32 data_start;                 16     4   offset of the payload
//		__u32 target_count;               20     4   out: number of dm_target_spec
//		__s32 open_count;                 24     4
//		__u32 flags;                      28     4   DM_*_FLAG
//		__u32 event_nr;                   32     4
//		__u32 padding;                    36     4
//		__u64 dev;                        40     8
//		char  name[DM_NAME_LEN];          48   128   NUL-terminated
//		char  uuid[DM_UUID_LEN];         176   129
//		char  data[7];                   305     7
//	};                                         312
//
//	struct dm_target_spec {              offset size
//		__u64 sector_start;                0     8
//		__u64 length;                      8     8
//		__s32 status;                     16     4
//		__u32 next;                       20     4   out: offset of the next spec from the payload start
//		char  target_type[16];            24    16
//	};                                          40   then the NUL-terminated parameter or status string
//
//	struct dm_target_msg {
//		__u64 sector;                      0     8   selects the target
//		char  message[];                   8         NUL-terminated
//	};
//
// These numbers are the kernel's ABI and must not change.
const (
	dmVersionMajor = 4 // DM_VERSION_MAJOR; minor 0: accepted by every 4.x kernel

	dmVersionOff     = 0
	dmDataSizeOff    = 12
	dmDataStartOff   = 16
	dmTargetCountOff = 20
	dmOpenCountOff   = 24
	dmFlagsOff       = 28
	dmEventNrOff     = 32
	dmDevOff         = 40
	dmNameOff        = 48
	dmUUIDOff        = 176
	dmDataOff        = 305
	dmIoctlSize      = 312 // sizeof(struct dm_ioctl)

	dmNameLen = 128 // DM_NAME_LEN, including the NUL
	dmUUIDLen = 129 // DM_UUID_LEN

	dmSpecSectorOff = 0
	dmSpecLengthOff = 8
	dmSpecStatusOff = 16
	dmSpecNextOff   = 20
	dmSpecTypeOff   = 24
	dmSpecSize      = 40 // sizeof(struct dm_target_spec)
	dmTypeLen       = 16 // DM_MAX_TYPE_NAME

	dmMsgSectorOff = 0
	dmMsgTextOff   = 8 // sizeof(struct dm_target_msg)

	dmBufferFullFlag = 1 << 8 // DM_BUFFER_FULL_FLAG: out, the payload did not fit

	dmIoctlType        = 0xfd // DM_IOCTL
	dmTableStatusCmd   = 12   // DM_TABLE_STATUS_CMD
	dmTargetMsgCmd     = 14   // DM_TARGET_MSG_CMD
	dmStatusBufInitial = 16 << 10
	dmStatusBufMax     = 4 << 20
	dmMessageMax       = 64 << 10
)

// Request numbers: _IOWR(DM_IOCTL, cmd, struct dm_ioctl). _IOWR is the same
// on every Linux architecture (read|write direction in the top two bits).
var (
	dmTableStatus = iowr(dmIoctlType, dmTableStatusCmd, dmIoctlSize)
	dmTargetMsg   = iowr(dmIoctlType, dmTargetMsgCmd, dmIoctlSize)
)

func iowr(typ, nr, size uintptr) uintptr { return 3<<30 | size<<16 | typ<<8 | nr }

// DMTarget is one target of a device-mapper table, as DM_TABLE_STATUS
// reports it.
type DMTarget struct {
	Start  uint64 // first sector (512 bytes) the target covers
	Length uint64 // sectors it covers
	Type   string // target type, e.g. "log-writes"
	Status string // the target's status line, e.g. "123 4567"
}

// dmRequest returns a buffer of size bytes holding a dm_ioctl header for the
// device called name, with the payload starting right after the header.
func dmRequest(name string, size int) ([]byte, error) {
	if err := checkDMName(name); err != nil {
		return nil, err
	}
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[dmVersionOff:], dmVersionMajor)
	ne.PutUint32(b[dmDataSizeOff:], uint32(size))
	ne.PutUint32(b[dmDataStartOff:], dmIoctlSize)
	copy(b[dmNameOff:dmNameOff+dmNameLen-1], name)
	return b, nil
}

func checkDMName(name string) error {
	switch {
	case name == "":
		return errors.New("empty device-mapper name")
	case len(name) >= dmNameLen:
		return fmt.Errorf("device-mapper name is %d bytes, longer than %d", len(name), dmNameLen-1)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("device-mapper name %q contains '/' or NUL", name)
	}
	return nil
}

// encodeTargetMsg builds the DM_TARGET_MSG buffer that sends message to the
// target at sector of the device called name.
func encodeTargetMsg(name string, sector uint64, message string) ([]byte, error) {
	switch {
	case message == "":
		return nil, errors.New("empty device-mapper message")
	case strings.IndexByte(message, 0) >= 0:
		return nil, errors.New("device-mapper message contains NUL")
	case len(message) > dmMessageMax:
		return nil, fmt.Errorf("device-mapper message is %d bytes, longer than %d", len(message), dmMessageMax)
	}
	size := dmIoctlSize + dmMsgTextOff + len(message) + 1
	size = (size + 7) &^ 7
	b, err := dmRequest(name, size)
	if err != nil {
		return nil, err
	}
	binary.NativeEndian.PutUint64(b[dmIoctlSize+dmMsgSectorOff:], sector)
	copy(b[dmIoctlSize+dmMsgTextOff:], message)
	return b, nil
}

// encodeStatus builds a DM_TABLE_STATUS buffer of size bytes asking for the
// status (not the table: DM_STATUS_TABLE_FLAG unset) of the device name.
func encodeStatus(name string, size int) ([]byte, error) { return dmRequest(name, size) }

// decodeStatus reads the targets out of a DM_TABLE_STATUS answer. full says
// the kernel ran out of room and the call must be repeated with a larger
// buffer.
func decodeStatus(b []byte) (targets []DMTarget, full bool, err error) {
	if len(b) < dmIoctlSize {
		return nil, false, fmt.Errorf("device-mapper answer of %d bytes, shorter than the %d-byte header", len(b), dmIoctlSize)
	}
	ne := binary.NativeEndian
	if ne.Uint32(b[dmFlagsOff:])&dmBufferFullFlag != 0 {
		return nil, true, nil
	}
	if v := ne.Uint32(b[dmVersionOff:]); v != dmVersionMajor {
		return nil, false, fmt.Errorf("device-mapper interface version %d, want %d", v, dmVersionMajor)
	}
	size, start := int(ne.Uint32(b[dmDataSizeOff:])), int(ne.Uint32(b[dmDataStartOff:]))
	count := int(ne.Uint32(b[dmTargetCountOff:]))
	if size > len(b) || start < dmIoctlSize || start > size {
		return nil, false, fmt.Errorf("device-mapper answer: data_start %d, data_size %d outside the %d-byte buffer", start, size, len(b))
	}
	data := b[start:size]
	if count > len(data)/dmSpecSize {
		return nil, false, fmt.Errorf("device-mapper answer: %d targets cannot fit in %d bytes", count, len(data))
	}
	pos := 0
	for i := range count {
		if pos < 0 || pos+dmSpecSize > len(data) {
			return nil, false, fmt.Errorf("device-mapper answer: target %d at offset %d past the %d-byte payload", i, pos, len(data))
		}
		spec := data[pos:]
		text := spec[dmSpecSize:]
		end := bytes.IndexByte(text, 0)
		if end < 0 {
			return nil, false, fmt.Errorf("device-mapper answer: status of target %d is not NUL-terminated", i)
		}
		targets = append(targets, DMTarget{
			Start:  ne.Uint64(spec[dmSpecSectorOff:]),
			Length: ne.Uint64(spec[dmSpecLengthOff:]),
			Type:   cString(spec[dmSpecTypeOff : dmSpecTypeOff+dmTypeLen]),
			Status: string(text[:end]),
		})
		next := int(ne.Uint32(spec[dmSpecNextOff:]))
		if i+1 < count && next <= pos {
			return nil, false, fmt.Errorf("device-mapper answer: target %d points back to offset %d", i, next)
		}
		pos = next
	}
	return targets, false, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// DMStatus returns the status line of the first target of the device-mapper
// device called name, what `dmsetup status NAME` prints after the target
// type. For a log-writes target that is "<logged entries> <next sector>",
// followed by " logging_disabled" once it has run out of log space.
func DMStatus(name string) (string, error) {
	targets, err := DMTargets(name)
	if err != nil {
		return "", err
	}
	if len(targets) == 0 {
		return "", &Error{Op: "dm status", Path: name, Offset: -1, Err: errors.New("device has no active table")}
	}
	return targets[0].Status, nil
}

// MaxMarkLabel is the longest label Mark sends. The log-writes target keeps
// at most sectorsize-32-1 bytes of a label and silently drops the rest; 479
// fits a log device of any sector size.
const MaxMarkLabel = 512 - 32 - 1

// Mark sends `mark LABEL` to the log-writes target of the device-mapper
// device called name, which logs a MARK entry carrying label: what
// `dmsetup message NAME 0 mark LABEL` does. The label must be one word: no
// white space, no NUL, at most MaxMarkLabel bytes. Backslashes are escaped, so the target receives the
// label as given (dmsetup would drop them).
func Mark(name, label string) error {
	switch {
	case label == "":
		return &Error{Op: "dm mark", Path: name, Offset: -1, Err: errors.New("empty label")}
	case len(label) > MaxMarkLabel:
		return &Error{Op: "dm mark", Path: name, Offset: -1, Err: fmt.Errorf("label of %d bytes is longer than %d; the target would truncate it", len(label), MaxMarkLabel)}
	case strings.IndexFunc(label, func(r rune) bool { return unicode.IsSpace(r) || r == 0 }) >= 0:
		return &Error{Op: "dm mark", Path: name, Offset: -1, Err: fmt.Errorf("label %q is not one word (contains white space or NUL)", label)}
	}
	return DMMessage(name, "mark "+strings.ReplaceAll(label, `\`, `\\`))
}
