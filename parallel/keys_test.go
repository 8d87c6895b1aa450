package parallel

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseKeys(t *testing.T) {
	t.Parallel()
	const k1, k2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for _, tc := range []struct {
		name string
		file string
		want []Key // nil: refused
		err  string
	}{
		{"bare key (version 1 file)", "  " + k1 + "\n", []Key{{"default", []byte(k1)}}, ""},
		{"bare passphrase with spaces", "correct horse battery staple\n", []Key{{"default", []byte("correct horse battery staple")}}, ""},
		{"one named key", "alice:" + k1 + "\n", []Key{{"alice", []byte(k1)}}, ""},
		{"named keys with comments", "# clients\nalice: " + k1 + "\n\nbob:" + k2 + "\r\n", []Key{{"alice", []byte(k1)}, {"bob", []byte(k2)}}, ""},
		{"short bare key", "abc\n", nil, "need at least"},
		{"short named key", "alice:abc\n", nil, "need at least"},
		{"unnamed line among named ones", "alice:" + k1 + "\n" + k2 + "\n", nil, "line 2"},
		{"same name twice", "a:" + k1 + "\na:" + k2 + "\n", nil, "twice"},
		{"same secret twice", "a:" + k1 + "\nb:" + k1 + "\n", nil, "same secret"},
		{"only comments: a bare key", "# nothing, really\n", []Key{{"default", []byte("# nothing, really")}}, ""},
		{"binary key with newlines (version 1)", "\x01\n\xff#x\n\x00:abcdefghijklmnop\n", []Key{{"default", []byte("\x01\n\xff#x\n\x00:abcdefghijklmnop")}}, ""},
		{"empty", "", nil, "need at least"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tc.file))
			if tc.want == nil {
				if err == nil || !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseKeys: %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("ParseKeys: %v, %v", got, err)
			}
			for i := range got {
				if got[i].Name != tc.want[i].Name || string(got[i].Secret) != string(tc.want[i].Secret) {
					t.Fatalf("key %d: %s:%q, want %s:%q", i, got[i].Name, got[i].Secret, tc.want[i].Name, tc.want[i].Secret)
				}
			}
		})
	}
}

func TestLoadKeysPermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "psk")
	if err := os.WriteFile(file, []byte("alice:0123456789abcdef\nbob:fedcba9876543210\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(file)
	if err != nil || len(keys) != 2 {
		t.Fatalf("LoadKeys of a 0600 file: %v, %v", keys, err)
	}
	if _, err := LoadClientKey(file); err == nil || !strings.Contains(err.Error(), "2 keys") {
		t.Fatalf("LoadClientKey of a file with 2 keys: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		os.Chmod(file, mode)
		_, err := LoadKeys(file)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "chmod 600 "+file) {
			t.Errorf("LoadKeys of a %04o file: %v, want a refusal naming the chmod", mode, err)
		}
		if _, err := LoadPSK(file); err == nil {
			t.Errorf("LoadPSK of a %04o file accepted", mode)
		}
	}
	os.Chmod(file, 0o400)
	if _, err := LoadKeys(file); err != nil {
		t.Errorf("LoadKeys of a 0400 file: %v", err)
	}
}

// FuzzParseKeys: whatever the file, ParseKeys returns valid unique keys
// or ErrAuth.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef\n"))
	f.Add([]byte("# keys\nalice:0123456789abcdef\nbob: fedcba9876543210\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseKeys(b)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("refused with %v, want ErrAuth", err)
			}
			return
		}
		if err := checkKeys(keys); err != nil {
			t.Fatalf("ParseKeys returned keys that do not check: %v", err)
		}
	})
}

// acl encodes a POSIX ACL xattr of entries {tag, perm, id}.
func acl(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

// TestKeyFileACL: the mode 0440 systemd gives a credential (0400 and an
// ACL entry for the service's user, whose mask shows in the group bits)
// is private; an ACL entry for anybody else is not.
func TestKeyFileACL(t *testing.T) {
	t.Parallel()
	const me, other = 1234, 999
	const r, rw = 4, 6
	systemd := acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclUser, r, me}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclMask, r, 0}, [3]uint32{aclOther, 0, 0})
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"systemd credential", systemd, true},
		{"another user", acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclUser, r, other}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclMask, r, 0}, [3]uint32{aclOther, 0, 0}), false},
		{"another user masked out", acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclUser, rw, other}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclMask, 0, 0}, [3]uint32{aclOther, 0, 0}), true},
		{"a group", acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclGroup, r, 50}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclMask, r, 0}, [3]uint32{aclOther, 0, 0}), false},
		{"owning group", acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclGroupObj, r, 0}, [3]uint32{aclOther, 0, 0}), false},
		{"others", acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclOther, r, 0}), false},
		{"truncated", systemd[:len(systemd)-3], false},
		{"unknown tag", acl([3]uint32{0x40, r, 0}), false},
	} {
		if got := aclPrivate(tc.b, me); got != tc.want {
			t.Errorf("%s: private %v, want %v", tc.name, got, tc.want)
		}
	}

	// The same on a real file, where the file system keeps ACLs.
	dir := t.TempDir()
	file := filepath.Join(dir, "psk")
	if err := os.WriteFile(file, []byte("0123456789abcdef0123456789abcdef\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	uid := uint32(os.Geteuid())
	mine := acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclUser, r, uid}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclMask, r, 0}, [3]uint32{aclOther, 0, 0})
	if err := unix.Setxattr(file, "system.posix_acl_access", mine, 0); errors.Is(err, unix.EOPNOTSUPP) {
		t.Logf("%s keeps no ACLs: the parser alone is tested", dir)
		return
	} else if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(file)
	if fi.Mode().Perm() != 0o440 {
		t.Fatalf("mode %04o with an ACL, want 0440", fi.Mode().Perm())
	}
	if _, err := LoadKeys(file); err != nil {
		t.Fatalf("LoadKeys of a credential-like file: %v", err)
	}
	theirs := acl([3]uint32{aclUserObj, r, 0}, [3]uint32{aclUser, r, uid + 1}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclMask, r, 0}, [3]uint32{aclOther, 0, 0})
	if err := unix.Setxattr(file, "system.posix_acl_access", theirs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeys(file); err == nil || !strings.Contains(err.Error(), "setfacl -b") {
		t.Fatalf("LoadKeys of a file another user may read by ACL: %v", err)
	}
}

// TestVersion1KeyFile: the key file production.md has always made (32
// random bytes, newlines and all) serves both sides unchanged, as the key
// named default.
func TestVersion1KeyFile(t *testing.T) {
	t.Parallel()
	key := []byte("\x8a\n\x00\x17 #:\xfe\r\n\x01\x02\x03\x04\x05\x06\x07\x08\x09\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x20\x21")
	file := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(file, key, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := LoadClientKey(file)
	if err != nil {
		t.Fatal(err)
	}
	c, s := pair(t, ServerConfig{PSKKeys: keys}, ClientConfig{PSK: ck.Secret, PSKName: ck.Name, Streams: 2})
	if s.Identity() != "psk:default" || c.Identity() != "psk:default" {
		t.Fatalf("identities %q/%q, want psk:default", s.Identity(), c.Identity())
	}
	roundTrip(t, c, s)
}
