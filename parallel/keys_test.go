package parallel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
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
		{"unnamed line among several", "alice:" + k1 + "\n" + k2 + "\n", nil, "line 2"},
		{"same name twice", "a:" + k1 + "\na:" + k2 + "\n", nil, "twice"},
		{"same secret twice", "a:" + k1 + "\nb:" + k1 + "\n", nil, "same secret"},
		{"only comments", "# nothing\n", nil, "no pre-shared keys"},
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
