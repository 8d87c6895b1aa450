package campaign

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// LogshipBinary builds cmd/logship once per test binary: the bench runs
// the real `logship serve` and `logship ship`.
func LogshipBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "logship-bench-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "logship")
		binOut, binErr = exec.Command("go", "build", "-o", binPath, "../../cmd/logship").CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("building logship: %v\n%s", binErr, binOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
