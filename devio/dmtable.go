package devio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Loading and swapping device-mapper tables (dmsetup load, suspend,
// resume, clear, table). The layouts are those of dm.go; these commands
// add the following (include/uapi/linux/dm-ioctl.h).
const (
	dmDevSuspendCmd = 6  // DM_DEV_SUSPEND_CMD
	dmTableLoadCmd  = 9  // DM_TABLE_LOAD_CMD
	dmTableClearCmd = 10 // DM_TABLE_CLEAR_CMD

	dmSuspendFlag       = 1 << 1  // DM_SUSPEND_FLAG: in, suspend (unset: resume)
	dmStatusTableFlag   = 1 << 4  // DM_STATUS_TABLE_FLAG: in, the table's parameters, not its status
	dmQueryInactiveFlag = 1 << 12 // DM_QUERY_INACTIVE_TABLE_FLAG: in, the inactive table

	dmLoadMax = 1 << 20 // bytes of parameters DMLoad sends at most
)

var (
	dmDevSuspend = iowr(dmIoctlType, dmDevSuspendCmd, dmIoctlSize)
	dmTableLoad  = iowr(dmIoctlType, dmTableLoadCmd, dmIoctlSize)
	dmTableClear = iowr(dmIoctlType, dmTableClearCmd, dmIoctlSize)
)

// encodeLoad builds the DM_TABLE_LOAD buffer that loads targets as the
// inactive table of the device called name. For a load, each
// dm_target_spec's next is the offset of the next spec from its own start,
// and its parameters follow it, NUL-terminated; each spec starts 8-byte
// aligned.
func encodeLoad(name string, targets []DMTarget) ([]byte, error) {
	if len(targets) == 0 {
		return nil, errors.New("device-mapper table without targets")
	}
	size := dmIoctlSize
	for i, t := range targets {
		switch {
		case t.Type == "" || len(t.Type) >= dmTypeLen || strings.IndexByte(t.Type, 0) >= 0:
			return nil, fmt.Errorf("device-mapper target %d: type %q", i, t.Type)
		case strings.IndexByte(t.Status, 0) >= 0:
			return nil, fmt.Errorf("device-mapper target %d: parameters contain NUL", i)
		case t.Length == 0:
			return nil, fmt.Errorf("device-mapper target %d: length 0", i)
		case i > 0 && t.Start != targets[i-1].Start+targets[i-1].Length:
			return nil, fmt.Errorf("device-mapper target %d starts at sector %d, not where target %d ends", i, t.Start, i-1)
		case i == 0 && t.Start != 0:
			return nil, fmt.Errorf("device-mapper table starts at sector %d, not 0", t.Start)
		}
		size += specLen(t)
	}
	if size-dmIoctlSize > dmLoadMax {
		return nil, fmt.Errorf("device-mapper table of %d bytes, more than %d", size-dmIoctlSize, dmLoadMax)
	}
	b, err := dmRequest(name, size)
	if err != nil {
		return nil, err
	}
	ne := binary.NativeEndian
	ne.PutUint32(b[dmTargetCountOff:], uint32(len(targets)))
	pos := dmIoctlSize
	for _, t := range targets {
		n := specLen(t)
		spec := b[pos:]
		ne.PutUint64(spec[dmSpecSectorOff:], t.Start)
		ne.PutUint64(spec[dmSpecLengthOff:], t.Length)
		ne.PutUint32(spec[dmSpecNextOff:], uint32(n))
		copy(spec[dmSpecTypeOff:dmSpecTypeOff+dmTypeLen-1], t.Type)
		copy(spec[dmSpecSize:], t.Status)
		pos += n
	}
	return b, nil
}

// specLen is the room a target takes in a load: its spec, its parameters
// and their NUL, rounded up to 8 bytes.
func specLen(t DMTarget) int { return (dmSpecSize + len(t.Status) + 1 + 7) &^ 7 }

// encodeSuspend builds the DM_DEV_SUSPEND buffer that suspends (or, with
// suspend false, resumes) the device called name.
func encodeSuspend(name string, suspend bool) ([]byte, error) {
	b, err := dmRequest(name, dmIoctlSize)
	if err == nil && suspend {
		binary.NativeEndian.PutUint32(b[dmFlagsOff:], dmSuspendFlag)
	}
	return b, err
}

// encodeTable builds a DM_TABLE_STATUS buffer asking for the parameters
// of the live table of name (or of its inactive table).
func encodeTable(name string, size int, inactive bool) ([]byte, error) {
	b, err := dmRequest(name, size)
	if err != nil {
		return nil, err
	}
	flags := uint32(dmStatusTableFlag)
	if inactive {
		flags |= dmQueryInactiveFlag
	}
	binary.NativeEndian.PutUint32(b[dmFlagsOff:], flags)
	return b, nil
}

// CheckDMName reports whether name can name a device-mapper device: not
// empty, shorter than 128 bytes, without '/' or NUL.
func CheckDMName(name string) error { return checkDMName(name) }
