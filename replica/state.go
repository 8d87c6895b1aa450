package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
)

// File names inside a task directory.
const (
	imageFile = "image"
	stateFile = "state"
)

// stateVersion is the version of the state file's layout.
const stateVersion = 1

// State is what DIR/TASK/state holds.
type State struct {
	Version int `json:"version"`
	// Size is the image's size in bytes.
	Size int64 `json:"size"`
	// SectorSize is the sector size of Durable.Journal: the unit of its
	// entries' sectors.
	SectorSize uint32 `json:"sector_size"`
	// Durable is the durable position as of the last checkpoint: the image
	// holds every window before it, and has been synced. In group commit
	// the staging log from Checkpoint holds the windows made durable since.
	Durable control.Position `json:"durable"`
	// Checkpoint is where recovery resumes in the staging logs.
	Checkpoint Checkpoint `json:"checkpoint"`
	// History says that every window applied to the image since the task
	// was created is in the staging logs, numbered from 1 and all
	// retained: the image's state at any mark can be rebuilt from them
	// (open at a mark). A task created by a server with Retain and group
	// commit has it; a server that removes staging logs or applies a
	// window without one clears it for good.
	History bool `json:"history,omitempty"`
	// Resize, when set, is the size the image is being grown to (logship
	// task resize): a crash came before the resize was done, and opening
	// the task finishes it.
	Resize int64 `json:"resize,omitempty"`
}

// Checkpoint is a place in the staging logs: the first entry recovery has
// to replay.
type Checkpoint struct {
	// Staging is the number of the staging log (staging-NNNNNN.log) to
	// replay from, 0 when there is nothing to replay.
	Staging uint64 `json:"staging"`
	// Entry is the index of the first entry to replay in it.
	Entry int64 `json:"entry"`
}

// check refuses a state that cannot be right.
func (s *State) check() error {
	switch {
	case s.Version != stateVersion:
		return fmt.Errorf("version %d, want %d", s.Version, stateVersion)
	case s.Size <= 0:
		return fmt.Errorf("image size %d", s.Size)
	case !journal.ValidSectorSize(int(s.SectorSize)):
		return fmt.Errorf("sector size %d", s.SectorSize)
	case s.Durable.NextEntry < 0:
		return fmt.Errorf("durable entry %d", s.Durable.NextEntry)
	case s.Resize != 0 && s.Resize < s.Size:
		return fmt.Errorf("resize to %d, below the image size %d", s.Resize, s.Size)
	case s.Checkpoint.Staging > 0 && s.Checkpoint.Entry < 1:
		return fmt.Errorf("checkpoint entry %d in staging log %d", s.Checkpoint.Entry, s.Checkpoint.Staging)
	}
	return nil
}

// loadState reads and checks the state file of the task in dir.
func loadState(dir string) (State, error) {
	p := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return State{}, ioErr("reading", p, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	if err := s.check(); err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	return s, nil
}

// saveState writes the state file of the task in dir durably.
func saveState(dir string, s State) error {
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileDurable(dir, stateFile, append(b, '\n'))
}

// writeFileDurable replaces dir/name with data so that after a crash the
// file holds either the old or the new content: a temp file, fsync,
// rename, fsync of the directory.
func writeFileDurable(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return ioErr("creating a temp file in", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return ioErr("writing", filepath.Join(dir, name), err)
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, making the names in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return ioErr("opening", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return ioErr("syncing", dir, err)
	}
	return nil
}
