package netbench

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

// LogshipBinary builds a static cmd/logship once per test binary: the bench runs
// the real `logship serve` and `logship ship`. (Exported for the
// external tests of the package; it exists only in tests.)
func LogshipBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "logship-bench-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "logship")
		// Static, so that the kernel VM (vm links) can run it too.
		build := exec.Command("go", "build", "-o", binPath, "../../cmd/logship")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		binOut, binErr = build.CombinedOutput()
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
