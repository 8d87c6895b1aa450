package replica

import "fmt"

// MaxTaskName bounds the length of a task name.
const MaxTaskName = 64

// CheckTask reports whether name may name a task: 1 to 64 bytes of
// [A-Za-z0-9._-], not starting with '.' (so not "." or "..", and never a
// hidden file or one of the server's own temporary names). A valid name is
// a plain file name: it cannot reach outside the server's directory.
func CheckTask(name string) error {
	if len(name) == 0 || len(name) > MaxTaskName {
		return fmt.Errorf("%w: %q: %d bytes, want 1 to %d", ErrTaskName, name, len(name), MaxTaskName)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: %q starts with '.'", ErrTaskName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: byte %#02x at %d is not one of [A-Za-z0-9._-]", ErrTaskName, name, c, i)
		}
	}
	return nil
}

// sizeName names an image size for a person: "64 MiB" when it is a whole
// number of a binary unit, else the unit rounded and the exact bytes
// ("32 MiB (33558528 bytes)").
func sizeName(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := n, 0
	for v != 0 && v%1024 == 0 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 1024 || i == len(units)-1 {
		return fmt.Sprintf("%d %s", v, units[i])
	}
	f, j := float64(n), 0
	for f >= 1024 && j < len(units)-1 {
		f /= 1024
		j++
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", f, units[j], n)
}
