package main

import (
	"context"
	"fmt"
)

func init() {
	register(command{name: "demo", summary: "ship an embedded kernel journal to an in-process server and verify the image", run: runDemo})
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "", "Runs the main job on an embedded default. Replication is not built yet (issue 4).")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "logship demo: replication (ship/serve) comes with issue 4; try 'logship inspect' and 'logship replay' meanwhile.")
	return nil
}
