package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logship/logship/fixtures/prereq"
)

// TestSystemdUnits checks the unit files of contrib/systemd with
// systemd-analyze verify (the ExecStart path pointed at the binary under
// test, which verify requires to exist), and that they keep their
// hardening.
func TestSystemdUnits(t *testing.T) {
	sa := prereq.Tool(t, "systemd-analyze", "systemd")
	src := filepath.Join("..", "..", "contrib", "systemd")
	dir := t.TempDir()
	units := map[string]string{"logship-serve.service": "logship-serve.service", "logship-ship@.service": "logship-ship@vol0.service"}
	var args []string
	for file, as := range units {
		b, err := os.ReadFile(filepath.Join(src, file))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "ProtectHome=yes",
			"SystemCallFilter=@system-service", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "LoadCredential=psk:/etc/logship/psk",
			"ExecStart=/usr/local/bin/logship "} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", file, want)
			}
		}
		text = strings.ReplaceAll(text, "/usr/local/bin/logship", logshipBin)
		p := filepath.Join(dir, as)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(sa, append([]string{"verify"}, args...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
