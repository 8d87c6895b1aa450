package parallel

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Key is a named pre-shared key. A peer that proves it holds Secret has
// the identity PSKIdentity(Name).
type Key struct {
	Name   string
	Secret []byte
}

// MaxKeyName bounds the length of a key name.
const MaxKeyName = 64

// checkKeyName enforces the key name rule: 1 to MaxKeyName bytes of
// [A-Za-z0-9._-].
func checkKeyName(n string) error {
	if n == "" || len(n) > MaxKeyName {
		return fmt.Errorf("key name of %d bytes, want 1 to %d", len(n), MaxKeyName)
	}
	for i := 0; i < len(n); i++ {
		if !nameByte(n[i]) {
			return fmt.Errorf("key name %q: only [A-Za-z0-9._-]", n)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// checkKeys checks a set of keys: valid unique names, secrets of at
// least MinPSK bytes, no secret under two names (the identity would be
// ambiguous).
func checkKeys(keys []Key) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: no pre-shared keys", ErrAuth)
	}
	for i, k := range keys {
		if err := checkKeyName(k.Name); err != nil {
			return fmt.Errorf("%w: %v", ErrAuth, err)
		}
		if len(k.Secret) < MinPSK {
			return fmt.Errorf("%w: key %q of %d bytes, need at least %d", ErrAuth, k.Name, len(k.Secret), MinPSK)
		}
		for _, o := range keys[:i] {
			if o.Name == k.Name {
				return fmt.Errorf("%w: key name %q twice", ErrAuth, k.Name)
			}
			if subtle.ConstantTimeCompare(o.Secret, k.Secret) == 1 {
				return fmt.Errorf("%w: keys %q and %q are the same secret", ErrAuth, o.Name, k.Name)
			}
		}
	}
	return nil
}

// ParseKeys decodes the contents of a key file (docs/security.md):
//
//   - Lines of the form NAME:SECRET, NAME of [A-Za-z0-9._-] (at most
//     MaxKeyName bytes), SECRET the rest of the line with the white space
//     around it removed; blank lines and lines starting with '#' are
//     skipped. Each line is a key named NAME.
//   - A file with no such line is one bare key, named DefaultKeyName: the
//     whole file with surrounding white space removed, whatever bytes it
//     holds (the key file of protocol version 1, e.g. 32 random bytes).
//
// A file mixing both is refused. Every secret is at least MinPSK bytes;
// names and secrets are unique.
func ParseKeys(b []byte) ([]Key, error) {
	var keys []Key
	other := 0 // first line that is not NAME:SECRET
	for i, line := range bytes.Split(b, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		if l == "" || l[0] == '#' {
			continue
		}
		name, secret, ok := namedLine(l)
		if !ok {
			if other == 0 {
				other = i + 1
			}
			continue
		}
		if len(secret) < MinPSK {
			return nil, fmt.Errorf("%w: line %d: key %q of %d bytes, need at least %d", ErrAuth, i+1, name, len(secret), MinPSK)
		}
		keys = append(keys, Key{Name: name, Secret: []byte(secret)})
	}
	if len(keys) == 0 {
		k := bytes.TrimSpace(b)
		if len(k) < MinPSK {
			return nil, fmt.Errorf("%w: key of %d bytes, need at least %d", ErrAuth, len(k), MinPSK)
		}
		return []Key{{Name: DefaultKeyName, Secret: k}}, nil
	}
	if other != 0 {
		return nil, fmt.Errorf("%w: line %d: want NAME:SECRET like the other lines", ErrAuth, other)
	}
	if err := checkKeys(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// namedLine splits "NAME:SECRET".
func namedLine(l string) (name, secret string, ok bool) {
	name, secret, ok = strings.Cut(l, ":")
	if !ok || checkKeyName(name) != nil {
		return "", "", false
	}
	return name, strings.TrimSpace(secret), true
}

// LoadKeys reads a key file (ParseKeys). A file that group or others may
// read or write is refused, as ssh refuses such a private key.
func LoadKeys(file string) ([]Key, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	if err := checkKeyPerm(f, file, fi.Mode()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrAuth, file, maxKeyFile)
	}
	keys, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return keys, nil
}

// maxKeyFile bounds the size of a key file.
const maxKeyFile = 1 << 20

// checkKeyPerm refuses a key file that group or others may access. Group
// bits that only show the mask of a POSIX ACL granting this process's
// user read access (systemd's LoadCredential= does that for a service's
// user) are not access by others.
func checkKeyPerm(f *os.File, file string, m fs.FileMode) error {
	if !m.IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrAuth, file)
	}
	p := m.Perm()
	if p&0o077 == 0 {
		return nil
	}
	if p&0o007 == 0 {
		buf := make([]byte, 1024)
		n, err := unix.Fgetxattr(int(f.Fd()), "system.posix_acl_access", buf)
		if err == nil && aclPrivate(buf[:n], uint32(os.Geteuid())) {
			return nil
		}
		if err == nil {
			return fmt.Errorf("%w: %s has an ACL that lets other users read the pre-shared key; run: setfacl -b %s && chmod 600 %s", ErrAuth, file, file, file)
		}
	}
	return fmt.Errorf("%w: %s has mode %04o: group or others may read the pre-shared key; run: chmod 600 %s", ErrAuth, file, p, file)
}

// POSIX ACL xattr layout (Linux, "system.posix_acl_access").
const (
	aclVersion   = 2
	aclHeader    = 4 // u32 version
	aclEntry     = 8 // u16 tag, u16 perm, u32 id
	aclUserObj   = 0x01
	aclUser      = 0x02
	aclGroupObj  = 0x04
	aclGroup     = 0x08
	aclMask      = 0x10
	aclOther     = 0x20
	aclReadWrite = 0x06
)

// aclPrivate reports whether the ACL b lets no one but the owner and
// user uid read or write the file.
func aclPrivate(b []byte, uid uint32) bool {
	if len(b) < aclHeader || binary.LittleEndian.Uint32(b) != aclVersion || (len(b)-aclHeader)%aclEntry != 0 {
		return false
	}
	mask := uint16(0xffff)
	type entry struct {
		tag, perm uint16
		id        uint32
	}
	var es []entry
	for e := b[aclHeader:]; len(e) > 0; e = e[aclEntry:] {
		x := entry{binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])}
		if x.tag == aclMask {
			mask = x.perm
		}
		es = append(es, x)
	}
	for _, e := range es {
		switch e.tag {
		case aclUserObj, aclMask:
		case aclUser:
			if e.id != uid && e.perm&mask&aclReadWrite != 0 {
				return false
			}
		case aclGroupObj, aclGroup:
			if e.perm&mask&aclReadWrite != 0 {
				return false
			}
		case aclOther:
			if e.perm&aclReadWrite != 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// LoadPSK reads a key file holding exactly one key (LoadKeys) and returns
// its secret: the key of a client.
func LoadPSK(file string) ([]byte, error) {
	k, err := LoadClientKey(file)
	return k.Secret, err
}

// LoadClientKey reads a key file holding exactly one key (LoadKeys): the
// key of a client, with its name.
func LoadClientKey(file string) (Key, error) {
	keys, err := LoadKeys(file)
	if err != nil {
		return Key{}, err
	}
	if len(keys) != 1 {
		return Key{}, fmt.Errorf("%w: %s holds %d keys; a client needs a file with its own key only", ErrAuth, file, len(keys))
	}
	return keys[0], nil
}
