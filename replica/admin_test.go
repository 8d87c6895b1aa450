package replica

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
)

func TestRemoveResize(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	j := newJournal(t, fixtures.DefaultWorkload(5, 512))
	ctx := t.Context()
	shipAll(t, ts, "vol", j)
	want := j.replayTo(t, -1)
	img := filepath.Join(ts.cfg.Dir, "vol", imageFile)

	// While a session holds the task, other sessions cannot remove or
	// resize it, and the holder cannot either once it has opened it.
	holder := ts.dial(t, "vol", 1)
	if _, err := openCall(ctx, holder, j.open(0)); err != nil {
		t.Fatal(err)
	}
	for _, req := range []control.Request{{Op: control.OpRemove}, {Op: control.OpResize, Resize: &control.Resize{Size: 2 * j.size}}} {
		var out struct{}
		other := ts.dial(t, "vol", 1)
		err := call(ctx, other, req, &out)
		other.Close()
		if codeOfErr(err) != control.CodeTaskBusy {
			t.Errorf("%s while another session holds the task: %v, want TASK_BUSY", req.Op, err)
		}
		if err := call(ctx, holder, req, &out); codeOfErr(err) != control.CodeBadRequest {
			t.Errorf("%s in the session that opened the task: %v, want BAD_REQUEST", req.Op, err)
		}
	}
	holder.Close()
	ts.waitIdle(t)
	sameBytes(t, "image after refused calls", readImage(t, ts.cfg.Dir, "vol"), want)

	for _, tc := range []struct {
		name string
		req  control.Request
		code control.Code
	}{
		{"shrink", control.Request{Op: control.OpResize, Resize: &control.Resize{Size: j.size / 2}}, control.CodeMismatch},
		{"unaligned", control.Request{Op: control.OpResize, Resize: &control.Resize{Size: j.size + 100}}, control.CodeBadRequest},
		{"no fields", control.Request{Op: control.OpResize}, control.CodeBadRequest},
	} {
		var out control.Resized
		if err := adminCall(t, ts, "vol", tc.req, &out); codeOfErr(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	var out control.Removed
	if err := adminCall(t, ts, "", control.Request{Op: control.OpRemove}, &out); codeOfErr(err) != control.CodeBadRequest {
		t.Errorf("remove on a session without a task: %v, want BAD_REQUEST", err)
	}
	if err := adminCall(t, ts, "nosuch", control.Request{Op: control.OpRemove}, &out); codeOfErr(err) != control.CodeNoTask {
		t.Errorf("remove of a task that does not exist: %v, want NO_TASK", err)
	}

	// Grow: the image keeps its bytes, the rest reads as zeros, and the
	// task opens with the new size.
	var rs control.Resized
	if err := adminCall(t, ts, "vol", control.Request{Op: control.OpResize, Resize: &control.Resize{Size: 2 * j.size}}, &rs); err != nil {
		t.Fatal(err)
	}
	if rs.OldSize != j.size || rs.ImageSize != 2*j.size {
		t.Fatalf("resize reply %+v", rs)
	}
	ts.waitIdle(t)
	if fi, err := os.Stat(img); err != nil || fi.Size() != 2*j.size {
		t.Fatalf("image after resize: %v, %v", fi, err)
	}
	got := readImage(t, ts.cfg.Dir, "vol")
	sameBytes(t, "grown image", got[:j.size], want)
	sameBytes(t, "grown part", got[j.size:], make([]byte, j.size))
	s := ts.dial(t, "vol", 1)
	task, err := openCall(ctx, s, j.open(0))
	if err != nil || task.ImageSize != 2*j.size || task.Durable.NextEntry == 0 {
		t.Fatalf("open after resize: %+v, %v", task, err)
	}
	s.Close()
	ts.waitIdle(t)

	// Remove: the directory is gone, status does not list the task, a
	// second remove finds nothing, and a new task of the name starts
	// afresh.
	if err := adminCall(t, ts, "vol", control.Request{Op: control.OpRemove}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "vol" || out.ImageSize != 2*j.size {
		t.Fatalf("remove reply %+v", out)
	}
	ts.waitIdle(t)
	if _, err := os.Stat(filepath.Join(ts.cfg.Dir, "vol")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("task directory after remove: %v", err)
	}
	leftovers(t, ts.cfg.Dir)
	st, err := ts.srv.Status()
	if err != nil || len(st.Tasks) != 0 {
		t.Fatalf("status after remove: %+v, %v", st, err)
	}
	if err := adminCall(t, ts, "vol", control.Request{Op: control.OpRemove}, &out); codeOfErr(err) != control.CodeNoTask {
		t.Errorf("second remove: %v, want NO_TASK", err)
	}
	task, err = openCall(ctx, ts.dial(t, "vol", 1), j.open(j.size))
	if err != nil || !task.Created || task.Durable.NextEntry != 0 {
		t.Fatalf("open after remove: %+v, %v", task, err)
	}
}

// adminCall makes req on a new session naming task, then closes it and
// waits until it has let the task go.
func adminCall(t *testing.T, ts *testServer, task string, req control.Request, reply any) error {
	t.Helper()
	s := ts.dial(t, task, 1)
	err := call(t.Context(), s, req, reply)
	s.Close()
	ts.waitIdle(t)
	return err
}

// leftovers fails if dir holds anything but tasks and the lock.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.Name() != ".lock" && CheckTask(de.Name()) != nil {
			t.Errorf("left in %s: %s", dir, de.Name())
		}
	}
}

// A crash in the middle of a resize leaves State.Resize: opening the task
// finishes it, whether the image was grown already or not.
func TestResizeInterrupted(t *testing.T) {
	t.Parallel()
	for _, grown := range []bool{false, true} {
		root := t.TempDir()
		const size = 1 << 20
		if err := createTask(root, "vol", size, "j", 512); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "vol")
		st, err := loadState(dir)
		if err != nil {
			t.Fatal(err)
		}
		st.Resize = 4 * size
		if err := saveState(dir, st); err != nil {
			t.Fatal(err)
		}
		if grown {
			if err := os.Truncate(filepath.Join(dir, imageFile), 4*size); err != nil {
				t.Fatal(err)
			}
		}
		task, err := openTask(root, "vol")
		if err != nil {
			t.Fatalf("grown %v: %v", grown, err)
		}
		if got := task.img.Size(); got != 4*size {
			t.Errorf("grown %v: image of %d bytes after open, want %d", grown, got, 4*size)
		}
		task.close()
		st, err = loadState(dir)
		if err != nil || st.Size != 4*size || st.Resize != 0 {
			t.Errorf("grown %v: state after open %+v, %v", grown, st, err)
		}
	}
}

// A removal interrupted after its rename leaves DIR/.rm-...: the next
// server start removes it. RemoveTask and ResizeTask work on a directory
// only while no server uses it.
func TestOfflineTaskCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	left := filepath.Join(dir, rmPrefix+"old-0123456789ab")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, imageFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Dir: dir})
	leftovers(t, dir)
	j := newJournal(t, fixtures.DefaultWorkload(6, 512))
	shipAll(t, ts, "a", j)
	shipAll(t, ts, "b", j)
	ctx := t.Context()
	if _, err := RemoveTask(ctx, dir, "a"); !errors.Is(err, ErrDirBusy) {
		t.Fatalf("RemoveTask while a server runs: %v, want ErrDirBusy", err)
	}
	if _, err := ResizeTask(ctx, dir, "a", 2*j.size); !errors.Is(err, ErrDirBusy) {
		t.Fatalf("ResizeTask while a server runs: %v, want ErrDirBusy", err)
	}
	ts.stop()
	if size, err := RemoveTask(ctx, dir, "a"); err != nil || size != j.size {
		t.Fatalf("RemoveTask: %d, %v", size, err)
	}
	if _, err := RemoveTask(ctx, dir, "a"); !errors.Is(err, ErrNoTask) {
		t.Fatalf("RemoveTask again: %v, want ErrNoTask", err)
	}
	if _, err := RemoveTask(ctx, dir, "../x"); !errors.Is(err, ErrTaskName) {
		t.Fatalf("RemoveTask of a bad name: %v, want ErrTaskName", err)
	}
	if old, err := ResizeTask(ctx, dir, "b", 2*j.size); err != nil || old != j.size {
		t.Fatalf("ResizeTask: %d, %v", old, err)
	}
	if _, err := ResizeTask(ctx, dir, "b", j.size); !errors.Is(err, ErrMismatch) {
		t.Fatalf("ResizeTask shrinking: %v, want ErrMismatch", err)
	}
	leftovers(t, dir)
	ts = startServer(t, Config{Dir: dir})
	st, err := ts.srv.Status()
	if err != nil || len(st.Tasks) != 1 || st.Tasks[0].Name != "b" || st.Tasks[0].ImageSize != 2*j.size {
		t.Fatalf("status after the offline calls: %+v, %v", st, err)
	}
}

// The states of a task no session holds (the others need sessions: the
// tests of cmd/logship run them through the binary).
func TestStateWithoutSession(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rep := report{at: now}
	for _, tc := range []struct {
		name string
		ts   control.TaskStatus
		rep  bool
		want control.TaskState
	}{
		{"state file unreadable", control.TaskStatus{LastError: "corrupt"}, false, control.StateCorrupt},
		{"staging log damaged", control.TaskStatus{ImageSize: 1, Corrupt: "x", LastError: "x"}, true, control.StateCorrupt},
		{"new", control.TaskStatus{ImageSize: 1}, false, control.StateIdle},
		{"last report caught up", control.TaskStatus{ImageSize: 1, Lag: &control.Lag{}}, true, control.StateIdle},
		{"last report behind", control.TaskStatus{ImageSize: 1, Lag: &control.Lag{Entries: 3, ToShip: 1, InFlight: 2}}, true, control.StateBehind},
		{"last report of another journal", control.TaskStatus{ImageSize: 1, Lag: &control.Lag{Entries: -1}}, true, control.StateBehind},
		{"last session failed", control.TaskStatus{ImageSize: 1, LastError: "x", Lag: &control.Lag{Entries: 3}}, true, control.StateError},
	} {
		if got := stateOf(&tc.ts, nil, rep, tc.rep); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A task whose state is damaged is Corrupt in status, and can be removed.
func TestRemoveCorrupt(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	j := newJournal(t, fixtures.DefaultWorkload(8, 512))
	shipAll(t, ts, "bad", j)
	if err := os.WriteFile(filepath.Join(ts.cfg.Dir, "bad", stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := ts.srv.Status()
	if err != nil || len(st.Tasks) != 1 || st.Tasks[0].State != control.StateCorrupt {
		t.Fatalf("status of a task with a damaged state file: %+v, %v", st, err)
	}
	var out control.Removed
	if err := adminCall(t, ts, "bad", control.Request{Op: control.OpRemove}, &out); err != nil {
		t.Fatalf("remove of a corrupt task: %v", err)
	}
	if st, err := ts.srv.Status(); err != nil || len(st.Tasks) != 0 {
		t.Fatalf("status after the remove: %+v, %v", st, err)
	}
	leftovers(t, ts.cfg.Dir)
}
