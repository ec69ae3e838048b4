package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"golang.org/x/sys/unix"
)

// fatal ends a server child whose server stopped serving; the orchestrator
// sees the exit and reports the server as dead, with this message.
func fatal(err error) {
	fmt.Fprintf(os.Stderr, "bench server: %v\n", err)
	os.Exit(3)
}

// ServeMain is the server child role: it starts the named server on the
// address and protocol given in args, prints "ready ADDR" (or "error MSG")
// on stdout, then answers commands read from stdin, one per line:
//
//	stat  →  "stat MONO_NS USER_NS SYS_NS RSS_BYTES" (this process's own getrusage)
//	quit  →  exit 0
//
// End of stdin also exits, so a server never outlives its orchestrator.
func ServeMain(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("server", "", "server row name")
	proto := fs.String("proto", "echo", "echo or http")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s, ok := Lookup(*name)
	if !ok {
		return fmt.Errorf("serve: unknown server %q", *name)
	}
	p, err := parseProto(*proto)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if s.Protocols&p == 0 {
		return fmt.Errorf("serve: server %s does not speak %s", s.Name, *proto)
	}
	raiseFDLimit()
	if stop, err := startProfile(s.Name); err != nil {
		fmt.Fprintf(os.Stderr, "bench server: %v\n", err)
	} else {
		defer stop()
	}
	bound, err := s.Start(p, *addr)
	if err != nil {
		fmt.Fprintf(stdout, "error %s\n", oneLine(err.Error()))
		return fmt.Errorf("serve %s: %w", s.Name, err)
	}
	if _, err := fmt.Fprintf(stdout, "ready %s\n", bound); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		switch cmd := strings.TrimSpace(sc.Text()); cmd {
		case "stat":
			u, err := selfUsage()
			if err != nil {
				fmt.Fprintf(stdout, "error %s\n", oneLine(err.Error()))
				continue
			}
			fmt.Fprintln(stdout, u.String())
		case "quit":
			return nil
		default:
			fmt.Fprintf(stdout, "error unknown command %q\n", cmd)
		}
	}
	return nil
}

// fdWanted is the open-file limit a bench process asks for: the idle
// workload holds 10,000 connections, and a server may use more than one fd
// per connection (evhub's netpoll backend dups each socket).
const fdWanted = 65536

// raiseFDLimit lifts RLIMIT_NOFILE to fdWanted where the process may (the
// hard limit binds unprivileged users; the runs then fail with EMFILE,
// reported as such).
func raiseFDLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil || lim.Cur >= fdWanted {
		return
	}
	want := unix.Rlimit{Cur: fdWanted, Max: max(lim.Max, fdWanted)}
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

// ProfileEnv, when set to a path prefix in the orchestrator's environment,
// makes every server child write a CPU profile of its whole life to
// PREFIX.SERVER.PID.prof (for finding where a row's server CPU goes; the
// profiler's own cost is in the figures of such a run).
const ProfileEnv = "EVHUB_BENCH_CPUPROFILE"

// startProfile starts the CPU profile ProfileEnv asks for; stop ends it.
func startProfile(server string) (stop func(), err error) {
	prefix := os.Getenv(ProfileEnv)
	if prefix == "" {
		return func() {}, nil
	}
	path := fmt.Sprintf("%s.%s.%d.prof", prefix, server, os.Getpid())
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

func parseProto(s string) (Protocol, error) {
	switch s {
	case "echo":
		return Echo, nil
	case "http":
		return HTTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want echo or http)", s)
}

func protoName(p Protocol) string {
	if p == HTTP {
		return "http"
	}
	return "echo"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
