package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenBacklog is what raw listeners ask for; the kernel caps it at
// net.core.somaxconn.
const listenBacklog = 65535

// sockAddr returns the TCP address an fd is bound to.
func sockAddr(fd int) (net.Addr, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, fmt.Errorf("getsockname: unexpected address %T", sa)
}

// rawListen opens a non-blocking IPv4 TCP listening socket on addr with
// plain syscalls (SO_REUSEADDR), for servers that own their fds: no
// os.File, so the Go netpoller never sees it.
func rawListen(addr string) (int, error) {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return -1, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("listen tcp %s: socket: %w", addr, err)
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	if ip4 := ta.IP.To4(); ip4 != nil {
		copy(sa.Addr[:], ip4)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen tcp %s: SO_REUSEADDR: %w", addr, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, &net.OpError{Op: "listen", Net: "tcp", Addr: ta, Err: os.NewSyscallError("bind", err)}
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		unix.Close(fd)
		return -1, &net.OpError{Op: "listen", Net: "tcp", Addr: ta, Err: os.NewSyscallError("listen", err)}
	}
	return fd, nil
}

// Usage is a process's resource use at one instant, as the process itself
// reports it.
type Usage struct {
	// Mono is a monotonic timestamp in nanoseconds (only differences mean
	// anything).
	Mono int64
	// User and Sys are the CPU times of every thread, live or exited
	// (getrusage RUSAGE_SELF), in nanoseconds.
	User, Sys int64
	// RSS is the resident set size in bytes (/proc/self/statm).
	RSS int64
}

// CPU is User + Sys.
func (u Usage) CPU() int64 { return u.User + u.Sys }

var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// selfUsage samples this process's Usage.
func selfUsage() (Usage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Usage{}, fmt.Errorf("getrusage: %w", err)
	}
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return Usage{}, fmt.Errorf("read RSS: %w", err)
	}
	rss, err := parseStatm(b, os.Getpagesize())
	if err != nil {
		return Usage{}, err
	}
	return Usage{
		Mono: monoNow(),
		User: ru.Utime.Nano(),
		Sys:  ru.Stime.Nano(),
		RSS:  rss,
	}, nil
}

// parseStatm returns the resident bytes from /proc/PID/statm ("size
// resident shared text lib data dt", in pages).
func parseStatm(b []byte, pageSize int) (int64, error) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("statm: want at least 2 fields, got %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || pages < 0 {
		return 0, fmt.Errorf("statm: bad resident field %q", f[1])
	}
	return pages * int64(pageSize), nil
}

// String encodes u as the server's reply to "stat".
func (u Usage) String() string {
	return fmt.Sprintf("stat %d %d %d %d", u.Mono, u.User, u.Sys, u.RSS)
}

// parseUsage decodes a "stat MONO USER SYS RSS" line.
func parseUsage(line string) (Usage, error) {
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "stat" {
		return Usage{}, fmt.Errorf("bad stat reply %q", line)
	}
	var v [4]int64
	for i := range v {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil || n < 0 {
			return Usage{}, fmt.Errorf("bad stat reply %q: field %d", line, i+1)
		}
		v[i] = n
	}
	return Usage{Mono: v[0], User: v[1], Sys: v[2], RSS: v[3]}, nil
}

// ProcStat is what the orchestrator reads of another process from
// /proc/PID/stat.
type ProcStat struct {
	State      byte  // R, S, D, Z, ...
	UserTicks  int64 // utime, in clock ticks
	SysTicks   int64 // stime, in clock ticks
	Threads    int64
	RSSPages   int64
	CPUsLastOn int64 // the CPU the process last ran on
}

// parseProcStat parses /proc/PID/stat. The command name may hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("proc stat: no ')' in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 39-3+1 {
		return ProcStat{}, fmt.Errorf("proc stat: %d fields after the name, want ≥ 37", len(f))
	}
	num := func(field int) (int64, error) {
		v, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: field %d %q: %w", field, f[field-3], err)
		}
		return v, nil
	}
	var st ProcStat
	if len(f[0]) != 1 {
		return ProcStat{}, fmt.Errorf("proc stat: bad state %q", f[0])
	}
	st.State = f[0][0]
	var err error
	for _, p := range []struct {
		field int
		dst   *int64
	}{{14, &st.UserTicks}, {15, &st.SysTicks}, {20, &st.Threads}, {24, &st.RSSPages}, {39, &st.CPUsLastOn}} {
		if *p.dst, err = num(p.field); err != nil {
			return ProcStat{}, err
		}
	}
	return st, nil
}

// readProcStat reads /proc/PID/stat.
func readProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	return parseProcStat(b)
}

// cpusAllowed reads the Cpus_allowed_list of a process, e.g. "0" or "0-1".
func cpusAllowed(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no Cpus_allowed_list in /proc/%d/status", pid)
}

// allowedCPUs returns the CPUs this process may run on.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var out []int
	for i := 0; i < 1024 && len(out) < set.Count(); i++ {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out, nil
}

// Machine describes where a result was measured.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go"`
	Commit    string `json:"commit"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	// Date is when the run started (RFC 3339).
	Date string `json:"date"`
}

// DescribeMachine collects the CPU model, core count, kernel, Go version
// and the source commit (from the binary's build info, else from git in
// the working directory, read-only).
func DescribeMachine() Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		Date:      time.Now().UTC().Format(time.RFC3339),
		CPU:       "unknown",
		Kernel:    "unknown",
		Commit:    "unknown",
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(b)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	m.Commit = commit()
	return m
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			return shortRev(rev) + dirty
		}
	}
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		// Read-only: never let git refresh the index.
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "HEAD")
	if err != nil || rev == "" {
		return "unknown"
	}
	if _, err := git("diff", "--quiet", "HEAD", "--"); err != nil {
		return shortRev(rev) + "-dirty"
	}
	return shortRev(rev)
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// fdPressure reports a process's open fds and its RLIMIT_NOFILE soft limit
// when it is within 1% (or 16 fds) of that limit.
func fdPressure(pid int) (open, limit int, near bool) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, 0, false
	}
	limit, ok := parseOpenFilesLimit(b)
	if !ok {
		return 0, 0, false
	}
	open = len(ents)
	return open, limit, open >= limit-max(16, limit/100)
}

// parseOpenFilesLimit reads the soft "Max open files" of /proc/PID/limits.
func parseOpenFilesLimit(b []byte) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(f[0])
			return n, err == nil
		}
	}
	return 0, false
}
