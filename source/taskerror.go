package source

import "github.com/logship/logship/control"

// TaskError is the server refusing to open the task (an error reply to
// OpOpen) or answering nonsense; block sync returns the same type.
type TaskError = control.TaskError
