package replica

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/logship/logship/control"
)

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := State{Size: 1 << 30, SectorSize: 4096,
		Durable:    control.Position{Journal: "xxh64:0123456789abcdef", NextEntry: 77, NextWindow: 9},
		Checkpoint: Checkpoint{Staging: 3, Entry: 120}}
	for range 2 { // the second save replaces the first
		if err := saveState(dir, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	want.Version = stateVersion
	if got != want {
		t.Fatalf("loaded %+v, want %+v", got, want)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 || des[0].Name() != stateFile {
		t.Fatalf("directory holds %v, want only %s", des, stateFile)
	}
}

func TestStateRefused(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not json":        "{",
		"version":         `{"version":2,"size":512,"sector_size":512}`,
		"size":            `{"version":1,"size":0,"sector_size":512}`,
		"sector size":     `{"version":1,"size":512,"sector_size":3}`,
		"negative entry":  `{"version":1,"size":512,"sector_size":512,"durable":{"next_entry":-1}}`,
		"checkpoint at 0": `{"version":1,"size":512,"sector_size":512,"checkpoint":{"staging":1,"entry":0}}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadState(dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := loadState(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing state: %v, want ErrNotExist", err)
	}
}
