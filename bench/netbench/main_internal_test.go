package netbench

import (
	"os"
	"testing"

	"github.com/logship/logship/fixtures"
)

// LogshipBinary is fixtures.LogshipBinary, for the tests of the package.
func LogshipBinary(t testing.TB) string { return fixtures.LogshipBinary(t) }

func TestMain(m *testing.M) { os.Exit(fixtures.RunTests(m)) }
