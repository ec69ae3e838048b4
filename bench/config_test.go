package bench

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func names(ss []*Server) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

func wlNames(ws []Workload) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name
	}
	return out
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := ParseFlags("bench", nil)
	require.NoError(t, err)
	assert.Equal(t, WorkloadNames(), wlNames(cfg.Workloads))
	assert.Equal(t, 1, cfg.Reps)
	assert.Equal(t, 2*time.Second, cfg.Duration)
	assert.Equal(t, names(Servers()), names(cfg.Servers))
	assert.Equal(t, StdlibRow, cfg.Servers[0].Name, "stdlib is the first row")

	cfg, err = ParseFlags("bench", []string{"-full"})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, cfg.Reps, 3)
	assert.Equal(t, WorkloadNames(), wlNames(cfg.Workloads))

	cfg, err = ParseFlags("compare", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"pingpong-1", "pingpong-64", "pingpong-1000", "idle-5000"}, wlNames(cfg.Workloads))
	assert.Equal(t, 1, cfg.Reps)
	assert.NotContains(t, names(cfg.Servers), "gnet-mc", "compare's short run leaves out NotInCompare rows")
	assert.Contains(t, names(cfg.Servers), "gnet")

	cfg, err = ParseFlags("bench", []string{"-workload", "idle-10000, pingpong-1,pingpong-1", "-backend", "gnet",
		"-duration", "3s", "-warmup", "0s", "-reps", "2", "-port", "0", "-cpus", "none", "-json", "-out", t.TempDir()})
	require.NoError(t, err)
	assert.Equal(t, []string{"pingpong-1", "idle-10000"}, wlNames(cfg.Workloads), "display order, no duplicates")
	assert.Equal(t, []string{"stdlib", "gnet", "gnet-mc"}, names(cfg.Servers)[:3])
	for _, s := range cfg.Servers {
		assert.Contains(t, []string{"netpoll", "gnet"}, s.Backend)
		if s.Backend == "netpoll" {
			assert.Equal(t, StdlibRow, s.Name, "-backend gnet keeps only the stdlib row of netpoll")
		}
	}
	assert.Equal(t, 3*time.Second, cfg.Duration)
	assert.Equal(t, time.Duration(0), cfg.Warmup)
	assert.Equal(t, 2, cfg.Reps)
	assert.Equal(t, -1, cfg.ServerCPU)
	assert.True(t, cfg.JSON)
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-backend", "nope"}, `unknown backend "nope"`},
		{[]string{"-backend", ","}, "no backend selected"},
		{[]string{"-workload", "pingpong-2"}, `unknown workload "pingpong-2"`},
		{[]string{"-duration", "-1s"}, "-duration -1s out of range"},
		{[]string{"-duration", "0s"}, "-duration 0s out of range"},
		{[]string{"-full", "-duration", "0s"}, "-duration 0s out of range"},
		{[]string{"-reps", "0"}, "-reps 0 out of range"},
		{[]string{"-workload", ""}, "no workload selected"},
		{[]string{"-duration", "11m"}, "-duration 11m0s out of range"},
		{[]string{"-warmup", "-5s"}, "-warmup -5s is negative"},
		{[]string{"-reps", "-1"}, "-reps -1 out of range"},
		{[]string{"-reps", "1000"}, "-reps 1000 out of range"},
		{[]string{"-port", "70000"}, "-port 70000 out of range"},
		{[]string{"-port", "-1"}, "-port -1 out of range"},
		{[]string{"-cpus", "0"}, `-cpus "0": want SERVER,LOAD`},
		{[]string{"-cpus", "0,4096"}, "CPU 4096 is not available"},
		{[]string{"-duration", "fast"}, "invalid value"},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, err := ParseFlags("bench", tc.args)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
		assert.False(t, strings.HasPrefix(err.Error(), "evhub"), "the command adds the prefix: %v", err)
		assert.NotContains(t, err.Error(), "\n", "one line: %v", tc.args)
	}
	if _, ok := Lookup("libev"); !ok {
		_, err := ParseFlags("bench", []string{"-backend", "cev"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "-tags cev")
	}
}

func TestParseFlagsHelp(t *testing.T) {
	_, err := ParseFlags("compare", []string{"-h"})
	var h errHelp
	require.ErrorAs(t, err, &h)
	assert.Contains(t, h.text, "usage: evhub compare")
	assert.Contains(t, h.text, "-workload")
	assert.Contains(t, h.text, "pingpong-1000")
}

func TestBusyPortIsOneLineError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cfg, err := ParseFlags("bench", []string{"-port", strconv.Itoa(port), "-workload", "pingpong-1"})
	require.NoError(t, err)
	cfg.Spawn = testSpawner
	_, err = Run(context.Background(), cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-port "+strconv.Itoa(port))
	assert.Contains(t, err.Error(), "address already in use")
	assert.NotContains(t, err.Error(), "\n")
}

func TestPlanInterleaves(t *testing.T) {
	std, _ := Lookup("stdlib")
	gn, _ := Lookup("gnet")
	ev, _ := Lookup("evio")
	w1, _ := LookupWorkload("pingpong-1")
	w2, _ := LookupWorkload("http-64")
	cfg := &Config{Workloads: []Workload{w1, w2}, Servers: []*Server{std, gn, ev}, Reps: 2}
	var got []string
	for _, p := range plan(cfg) {
		got = append(got, strconv.Itoa(p.rep)+":"+p.w.Name+":"+p.s.Name)
	}
	assert.Equal(t, []string{
		"0:pingpong-1:stdlib", "0:pingpong-1:gnet", "0:pingpong-1:evio",
		"0:http-64:stdlib", // only stdlib speaks HTTP among these
		"1:pingpong-1:gnet", "1:pingpong-1:evio", "1:pingpong-1:stdlib",
		"1:http-64:stdlib",
	}, got)
}
