package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// controlFD is the fd on which a child role writes its protocol lines; the
// orchestrator passes it as the first of cmd.ExtraFiles.
const controlFD = 3

// childEnv marks a process started by the orchestrator as a child role.
const childEnv = "EVHUB_BENCH_CHILD"

// ChildMain runs a child role, "serve" or "load", as started by the
// orchestrator: commands arrive on stdin and protocol lines go to fd 3.
// Started by hand, without fd 3, it says so instead of running.
func ChildMain(role string, args []string) error {
	fl, err := unix.FcntlInt(controlFD, unix.F_GETFL, 0)
	if os.Getenv(childEnv) != "1" || err != nil || fl&unix.O_ACCMODE == unix.O_RDONLY {
		return fmt.Errorf("__%s is internal to evhub bench: it runs only as its child, with the control pipe on fd %d", role, controlFD)
	}
	ctl := os.NewFile(controlFD, "bench-control")
	defer ctl.Close()
	switch role {
	case "serve":
		return ServeMain(args, os.Stdin, ctl)
	case "load":
		return LoadMain(args, os.Stdin, ctl)
	}
	return fmt.Errorf("unknown bench child role %q", role)
}
