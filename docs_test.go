//go:build linux

package evhub_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/backends/all"
)

// docCommand is a command a document shows, with the commands that follow
// it in the same place (curl against a server it starts).
type docCommand struct {
	where string   // file:line
	tags  string   // -tags value
	pkg   string   // ./cmd/evhub, ./examples/echo, ...
	args  []string // after the package
	then  [][]string
}

var (
	reGoRun    = regexp.MustCompile("go run ((?:-tags [a-z0-9_,]+ )?)(\\./[a-z0-9_/]+)([^`#\n]*)")
	reExample  = regexp.MustCompile(`^//\t(go run|curl) `)
	reAddrFlag = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)
)

// docCommands extracts every `go run` the README, docs/, bench/README.md
// and the package docs of the examples and of cmd/evhub show, and the curl
// lines under an example's.
func docCommands(t *testing.T) []*docCommand {
	t.Helper()
	files := []string{"README.md", "bench/README.md"}
	for _, glob := range []string{"docs/*.md", "examples/*/main.go", "cmd/evhub/main.go"} {
		m, err := filepath.Glob(glob)
		require.NoError(t, err)
		files = append(files, m...)
	}
	var out []*docCommand
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		isGo := strings.HasSuffix(f, ".go")
		var last *docCommand
		for i, line := range strings.Split(string(data), "\n") {
			if isGo && !reExample.MatchString(line) {
				if !strings.HasPrefix(line, "//") {
					break // the package doc is over
				}
				last = nil
				continue
			}
			if isGo && strings.HasPrefix(line, "//\tcurl ") {
				require.NotNil(t, last, "%s:%d: curl without a server before it", f, i+1)
				last.then = append(last.then, shellWords(t, strings.TrimPrefix(line, "//\t")))
				continue
			}
			for _, m := range reGoRun.FindAllStringSubmatch(line, -1) {
				c := &docCommand{
					where: f + ":" + strconv.Itoa(i+1),
					tags:  strings.TrimSpace(strings.TrimPrefix(m[1], "-tags ")),
					pkg:   m[2],
					args:  strings.Fields(m[3]),
				}
				out = append(out, c)
				last = c
			}
		}
	}
	return out
}

// shellWords splits a documented command line: words, and single-quoted
// words.
func shellWords(t *testing.T, s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '\'' {
			end := strings.IndexByte(s[1:], '\'')
			require.GreaterOrEqual(t, end, 0, "unbalanced quote in %q", s)
			out = append(out, s[1:1+end])
			s = s[2+end:]
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// TestDocumentedCommands runs every command the documentation shows, so
// that none can drift from the code: each binary is built once (with the
// tags the command gives); commands of the evhub tool that would run the
// whole suite or the bench run with -h, the others run as written; an
// example server runs on a free port until it prints its first line, and
// the curl commands under it run against it.
func TestDocumentedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every documented binary")
	}
	cmds := docCommands(t)
	require.NotEmpty(t, cmds)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	dir := t.TempDir()
	built := map[string]string{}
	build := func(c *docCommand) string {
		key := c.tags + " " + c.pkg
		if exe, ok := built[key]; ok {
			return exe
		}
		exe := filepath.Join(dir, strconv.Itoa(len(built)))
		args := []string{"build", "-o", exe}
		if c.tags != "" {
			args = append(args, "-tags", c.tags)
		}
		out, err := exec.Command(gobin, append(args, c.pkg)...).CombinedOutput()
		require.NoError(t, err, "%s: go %s: %s", c.where, strings.Join(args, " "), out)
		built[key] = exe
		return exe
	}
	for _, c := range cmds {
		t.Run(c.where, func(t *testing.T) {
			for _, tag := range strings.Split(c.tags, ",") {
				if tag != "" && !slices.Contains(all.Preference(), tag) {
					t.Skipf("-tags %s names no backend (an illustration, such as docs/backends.md's foo)", tag)
				}
			}
			if strings.Contains(c.tags, "cev") {
				if _, err := os.Stat("/usr/include/ev.h"); err != nil {
					t.Skip("-tags cev needs libev-dev (ev.h)")
				}
			}
			exe := build(c)
			switch {
			case c.pkg == "./cmd/evhub":
				runTool(t, c, exe)
			case strings.HasPrefix(c.pkg, "./examples/"):
				runServer(t, c, exe)
			default:
				t.Fatalf("%s: no rule to check %s", c.where, c.pkg)
			}
		})
	}
}

// runTool runs an evhub subcommand: quick ones as written, long ones
// (the suite, the bench, fuzz, soak) with -h, checking that each flag the
// document gives exists.
func runTool(t *testing.T, c *docCommand, exe string) {
	require.NotEmpty(t, c.args, "%s: evhub without a subcommand", c.where)
	args := c.args
	long := map[string]bool{"compare": true, "bench": true, "conformance": true, "fuzz": true, "soak": true}
	if long[args[0]] {
		// The help alone; every flag the document gives must be in it.
		args = []string{args[0], "-h"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, args...).CombinedOutput()
	require.NoError(t, err, "%s: evhub %s:\n%s", c.where, strings.Join(args, " "), out)
	if long[args[0]] {
		for _, a := range c.args[1:] {
			if strings.HasPrefix(a, "-") {
				name := strings.SplitN(a, "=", 2)[0]
				assert.Regexp(t, "\n  "+regexp.QuoteMeta(name)+"[ \n]", string(out), "%s: flag %s is in evhub %s -h", c.where, name, args[0])
			}
		}
	} else {
		assert.Contains(t, string(out), "default", "%s: evhub %s", c.where, strings.Join(args, " "))
	}
}

// runServer starts an example on a free port, checks its first line, runs
// the commands documented under it against it, and stops it. An example
// whose first line names no address is a program that runs and exits: it
// must exit with status 0.
func runServer(t *testing.T, c *docCommand, exe string) {
	args := make([]string, len(c.args))
	for i, a := range c.args {
		if i > 0 && c.args[i-1] == "-addr" {
			a = "127.0.0.1:0"
		}
		args[i] = a
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	lines := bufio.NewScanner(pr)
	require.True(t, lines.Scan(), "%s: no output", c.where)
	first := lines.Text()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr := reAddrFlag.FindString(first)
	if addr == "" {
		// Not a server: a program that runs for a moment and exits.
		require.Empty(t, c.then, "%s: commands documented under a program that serves nothing", c.where)
		select {
		case err := <-exited:
			exited <- err // for the deferred Kill
			require.NoError(t, err, "%s: first line %q", c.where, first)
		case <-ctx.Done():
			require.FailNow(t, "did not exit", "%s: first line %q", c.where, first)
		}
		return
	}
	for _, then := range c.then {
		if _, err := exec.LookPath(then[0]); err != nil {
			t.Logf("%s: %s not installed; not run", c.where, then[0])
			continue
		}
		args := make([]string, len(then)-1)
		for i, a := range then[1:] {
			args[i] = reAddrFlag.ReplaceAllString(a, addr)
		}
		out, err := exec.CommandContext(ctx, then[0], append([]string{"-sSf", "-m", "10"}, args...)...).CombinedOutput()
		require.NoError(t, err, "%s: %s: %s", c.where, strings.Join(then, " "), out)
	}
}
