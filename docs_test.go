//go:build linux

package evhub_test

import (
	"bufio"
	"context"
	"go/build"
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
	reGoBuild  = regexp.MustCompile("go build ((?:-tags [a-z0-9_,]+ )?)-o ([^ `]+) (\\./[a-z0-9_/]+)")
)

// docCommands extracts every `go run` the README, docs/, bench/README.md
// and the package docs of the examples and of cmd/evhub show, the runs of
// a binary a document builds with `go build -o`, and the curl lines under
// an example's.
func docCommands(t *testing.T) []*docCommand {
	t.Helper()
	files := []string{"README.md", "bench/README.md"}
	for _, glob := range []string{"docs/*.md", "examples/*/main.go", "cmd/evhub/main.go"} {
		m, err := filepath.Glob(glob)
		require.NoError(t, err)
		files = append(files, m...)
	}
	var out []*docCommand
	built := map[string][2]string{} // binary path -> tags, package
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
			// A binary a document builds with go build -o, then runs.
			for _, m := range reGoBuild.FindAllStringSubmatch(line, -1) {
				built[m[2]] = [2]string{strings.TrimSpace(strings.TrimPrefix(m[1], "-tags ")), m[3]}
			}
			if w := strings.Fields(line); len(w) > 0 {
				if b, ok := built[w[0]]; ok {
					out = append(out, &docCommand{where: f + ":" + strconv.Itoa(i+1), tags: b[0], pkg: b[1], args: w[1:]})
				}
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

// goTool is a `go test` or `go build` a document shows.
type goTool struct {
	where string
	verb  string   // test or build
	words []string // after "go <verb>"
}

// docSnippets returns the commands a Markdown file shows: each line of a
// fenced or indented code block (a line ending in a backslash continues on
// the next) and each inline code span (which may wrap across lines), with
// the line each starts on.
func docSnippets(text string) (lines []int, snippets []string) {
	all := strings.Split(text, "\n")
	fenced, pending, start := false, "", 0
	var prose strings.Builder // the text outside fences, line breaks kept
	proseLine := []int{}      // prose line number -> file line number
	for i, l := range all {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if fenced || strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t") {
			if pending == "" {
				start = i + 1
			}
			if c, ok := strings.CutSuffix(strings.TrimRight(l, " "), `\`); ok {
				pending += c + " "
				continue
			}
			lines, snippets = append(lines, start), append(snippets, pending+l)
			pending = ""
			if fenced {
				continue
			}
			// An indented line may be a list item's continuation: its
			// code spans count too.
		}
		prose.WriteString(l + "\n")
		proseLine = append(proseLine, i+1)
	}
	p, line := prose.String(), 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\n':
			line++
		case '`':
			end := strings.IndexByte(p[i+1:], '`')
			if end < 0 {
				return lines, snippets
			}
			span := p[i+1 : i+1+end]
			lines, snippets = append(lines, proseLine[line]), append(snippets, strings.ReplaceAll(span, "\n", " "))
			line += strings.Count(span, "\n")
			i += end + 1
		}
	}
	return lines, snippets
}

var (
	reGoTool   = regexp.MustCompile("(?:^|[\\s`])go (test|build) ")
	reTestFunc = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz|Example)\w*)\(`)
)

// docGoTools extracts every `go test` and `go build` the README, docs/
// and bench/README.md show.
func docGoTools(t *testing.T) []goTool {
	t.Helper()
	files := []string{"README.md", "bench/README.md"}
	md, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	var out []goTool
	for _, f := range append(files, md...) {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		lines, snippets := docSnippets(string(data))
		for i, s := range snippets {
			loc := reGoTool.FindStringSubmatchIndex(s)
			if loc == nil {
				continue
			}
			rest := s[loc[1]:]
			if c := strings.Index(rest, " #"); c >= 0 {
				rest = rest[:c] // a comment after the command
			}
			if c := strings.IndexByte(rest, '`'); c >= 0 {
				rest = rest[:c] // the end of a code span
			}
			c := goTool{
				where: f + ":" + strconv.Itoa(lines[i]),
				verb:  s[loc[2]:loc[3]],
				words: shellWords(t, rest),
			}
			if !slices.ContainsFunc(out, func(o goTool) bool { return o.where == c.where && slices.Equal(o.words, c.words) }) {
				out = append(out, c) // an indented line is seen as code and as prose
			}
		}
	}
	return out
}

// splitTop splits a test-name pattern at sep where it is outside
// parentheses and brackets, as go test splits -run and -bench.
func splitTop(pat string, sep byte) []string {
	var out []string
	depth, from := 0, 0
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, pat[from:i])
				from = i + 1
			}
		}
	}
	return append(out, pat[from:])
}

// TestDocumentedGoTests checks every `go test` and `go build` the
// documents show without running them (most are long benchmarks or
// fuzzing): a go build builds as written (into a temporary directory);
// for a go test, each alternative of its -run, -bench and -fuzz patterns
// names at least one test, benchmark or fuzz target in the test files the
// command's tags select in each package it names, so a renamed benchmark
// cannot leave a document pointing at nothing. Patterns meant to match
// nothing ('^$', XXX) and ./... are left alone; CI compiles every test
// package under every backend's tag (go vet -tags).
func TestDocumentedGoTests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the test binary of every package the documents name")
	}
	cmds := docGoTools(t)
	require.NotEmpty(t, cmds)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	listed := map[string][]string{} // tags + package -> names
	list := func(t *testing.T, tags, pkg string) []string {
		key := tags + " " + pkg
		if names, ok := listed[key]; ok {
			return names
		}
		ctx := build.Default
		ctx.BuildTags = strings.Split(tags, ",")
		bp, err := ctx.ImportDir(pkg, 0)
		require.NoError(t, err, "package %s (-tags %q)", pkg, tags)
		var names []string
		for _, f := range append(bp.TestGoFiles, bp.XTestGoFiles...) {
			src, err := os.ReadFile(filepath.Join(pkg, f))
			require.NoError(t, err)
			for _, m := range reTestFunc.FindAllSubmatch(src, -1) {
				names = append(names, string(m[1]))
			}
		}
		listed[key] = names
		return names
	}
	valued := map[string]bool{"-tags": true, "-run": true, "-bench": true, "-fuzz": true, "-skip": true,
		"-count": true, "-benchtime": true, "-fuzztime": true, "-timeout": true, "-o": true}
	for _, c := range cmds {
		t.Run(c.where, func(t *testing.T) {
			flags := map[string]string{}
			var pkgs []string
			for i := 0; i < len(c.words); i++ {
				w := c.words[i]
				switch {
				case valued[w]:
					require.Less(t, i+1, len(c.words), "%s: %s without a value", c.where, w)
					flags[w] = c.words[i+1]
					i++
				case strings.HasPrefix(w, "./"):
					pkgs = append(pkgs, w)
				case strings.HasPrefix(w, "-"):
					// -race, -benchmem, -v: nothing to check
				default:
					t.Fatalf("%s: go %s: unexpected word %q", c.where, c.verb, w)
				}
			}
			if len(pkgs) == 0 && len(flags) == 0 {
				t.Skipf("%s: go %s %s names no package: a mention, not a command", c.where, c.verb, strings.Join(c.words, " "))
			}
			require.NotEmpty(t, pkgs, "%s: go %s names no package", c.where, c.verb)
			for _, tag := range strings.Split(flags["-tags"], ",") {
				if tag != "" && !slices.Contains(all.Preference(), tag) {
					t.Skipf("-tags %s names no backend (an illustration, such as docs/backends.md's foo)", tag)
				}
			}
			if strings.Contains(flags["-tags"], "cev") {
				if _, err := os.Stat("/usr/include/ev.h"); err != nil {
					t.Skip("-tags cev needs libev-dev (ev.h)")
				}
			}
			if c.verb == "build" {
				args := []string{"build", "-o", filepath.Join(t.TempDir(), "out")}
				if tags := flags["-tags"]; tags != "" {
					args = append(args, "-tags", tags)
				}
				out, err := exec.Command(gobin, append(args, pkgs...)...).CombinedOutput()
				require.NoError(t, err, "%s: go %s: %s", c.where, strings.Join(args, " "), out)
				return
			}
			for _, pkg := range pkgs {
				if pkg == "./..." {
					continue // the whole suite: this test is part of it
				}
				if strings.Contains(pkg, "/foo") {
					t.Skipf("%s is an illustration (docs/backends.md's foo)", pkg)
				}
				names := list(t, flags["-tags"], pkg)
				for _, flag := range []string{"-run", "-bench", "-fuzz"} {
					pat, ok := flags[flag]
					if !ok || pat == "^$" || pat == "XXX" {
						continue
					}
					for _, alt := range splitTop(splitTop(pat, '/')[0], '|') {
						re, err := regexp.Compile(alt)
						require.NoError(t, err, "%s: %s %q", c.where, flag, pat)
						assert.True(t, slices.ContainsFunc(names, re.MatchString),
							"%s: %s %q: %q matches nothing in %s (-tags %q)", c.where, flag, pat, alt, pkg, flags["-tags"])
					}
				}
			}
		})
	}
}
