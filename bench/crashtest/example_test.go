package crashtest_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/fixtures"
)

// Check every FLUSH, FUA and MARK state of a journal, and two explored
// states inside the window after each, with a check written in Go. A
// shell command line is a crashtest.Command{Line: "e2fsck -fn {}"}.
func ExampleCrashtest() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	j, err := fixtures.DefaultWorkload(1, 512).Bytes()
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "journal")
	if err := os.WriteFile(path, j, 0o644); err != nil {
		log.Fatal(err)
	}

	check := crashtest.CheckFunc(func(ctx context.Context, s *crashtest.State) ([]byte, error) {
		// s.Image holds the state after s.Entry (plus s.Keep when
		// s.Explore > 0); the check may read and write it.
		return nil, nil
	})
	sum, err := crashtest.Crashtest(context.Background(), path, crashtest.Options{
		Check:   check,
		Device:  crashtest.DeviceFile, // {} and State.Target: the image file, no loop device
		Explore: 2,
		WorkDir: dir,
	})
	if err != nil {
		log.Fatal(err) // a *crashtest.PointError when a state fails
	}
	fmt.Printf("%d entries: %d points and %d explored states checked, %d failed\n",
		sum.Entries, sum.Points, sum.Explored, sum.Failed)
	// Output:
	// 400 entries: 45 points and 80 explored states checked, 0 failed
}
