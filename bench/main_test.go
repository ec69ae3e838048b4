package bench

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// roleEnv makes the test binary act as a child role, the way `evhub
// __serve` / `evhub __load` do for the command.
const roleEnv = "EVHUB_BENCH_TEST_ROLE"

func TestMain(m *testing.M) {
	switch role := os.Getenv(roleEnv); role {
	case "":
		os.Exit(m.Run())
	case "serve", "load":
		if err := ChildMain(role, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", roleEnv, role)
		os.Exit(2)
	}
}

// testSpawner re-executes the test binary as a child role.
func testSpawner(role string, args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	// A race-built child otherwise sleeps a second at exit (GORACE
	// atexit_sleep_ms defaults to 1000).
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "GORACE=atexit_sleep_ms=0")
	return cmd, nil
}
