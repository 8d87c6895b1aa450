package control

import "fmt"

// TaskError is the server refusing a task call of the source (an error
// reply to OpOpen or OpStatus) or answering nonsense. Reconnecting does
// not help, unless its code is retryable (Retryable: the task is busy, the
// server's disk is full, ...).
type TaskError struct {
	Task string
	Err  error
	Hint string
}

func (e *TaskError) Error() string {
	s := fmt.Sprintf("task %q: %v", e.Task, e.Err)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *TaskError) Unwrap() error { return e.Err }
