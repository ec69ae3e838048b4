package bench

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestParseStatm(t *testing.T) {
	rss, err := parseStatm([]byte("12345 678 90 1 0 2000 0\n"), 4096)
	require.NoError(t, err)
	assert.Equal(t, int64(678*4096), rss)
	for _, bad := range []string{"", "12", "1 x 3", "1 -5 3"} {
		_, err := parseStatm([]byte(bad), 4096)
		assert.Error(t, err, "%q", bad)
	}
}

func TestUsageRoundTrip(t *testing.T) {
	u := Usage{Mono: 123456789, User: 1000, Sys: 2000, RSS: 4 << 20}
	got, err := parseUsage(u.String())
	require.NoError(t, err)
	assert.Equal(t, u, got)
	assert.Equal(t, int64(3000), got.CPU())
	for _, bad := range []string{"", "stat 1 2 3", "stats 1 2 3 4", "stat 1 2 x 4", "stat 1 2 -3 4", "stat 1 2 3 4 5"} {
		_, err := parseUsage(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestSelfUsage(t *testing.T) {
	u0, err := selfUsage()
	require.NoError(t, err)
	// Burn a little CPU: usage must move forward.
	deadline := time.Now().Add(30 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	u1, err := selfUsage()
	require.NoError(t, err)
	assert.Greater(t, u1.Mono, u0.Mono)
	assert.Greater(t, u1.CPU(), u0.CPU())
	assert.Greater(t, u1.RSS, int64(1<<20))
}

func TestParseProcStat(t *testing.T) {
	// The name may contain spaces and ')'; fields count from the last ')'.
	line := "4242 (evil) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 7 0 1000 123456789 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parseProcStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, byte('S'), st.State)
	assert.Equal(t, int64(250), st.UserTicks)
	assert.Equal(t, int64(75), st.SysTicks)
	assert.Equal(t, int64(7), st.Threads)
	assert.Equal(t, int64(512), st.RSSPages)
	assert.Equal(t, int64(1), st.CPUsLastOn)

	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", strings.Replace(line, " 250 ", " x ", 1), strings.Replace(line, ") S ", ") SS ", 1)} {
		_, err := parseProcStat([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}

	self, err := readProcStat(os.Getpid())
	require.NoError(t, err)
	assert.Contains(t, "RSD", string(self.State))
	assert.Positive(t, self.Threads)
	assert.Positive(t, self.RSSPages)
}

func TestCPUModelAndMachine(t *testing.T) {
	assert.Equal(t, "AMD EPYC 7B13", cpuModel([]byte("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")))
	assert.Equal(t, "unknown", cpuModel([]byte("processor : 0\n")))
	m := DescribeMachine()
	assert.NotEmpty(t, m.CPU)
	assert.Positive(t, m.Cores)
	assert.True(t, strings.HasPrefix(m.Kernel, "Linux "), m.Kernel)
	assert.True(t, strings.HasPrefix(m.GoVersion, "go"), m.GoVersion)
	assert.NotEmpty(t, m.Commit)
}

func TestReadHTTPResponse(t *testing.T) {
	read := func(s string) error { return readHTTPResponse(bufio.NewReader(strings.NewReader(s))) }
	ok := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
	assert.NoError(t, read(ok))
	assert.NoError(t, read(ok+ok[:0]))
	br := bufio.NewReader(strings.NewReader(ok + ok))
	require.NoError(t, readHTTPResponse(br))
	require.NoError(t, readHTTPResponse(br), "keep-alive: the second response follows the first")

	assert.ErrorContains(t, read("HTTP/1.1 404 Not Found\r\n\r\n"), "unexpected status line")
	assert.ErrorContains(t, read("HTTP/1.1 200 OK\r\n\r\n"), "without Content-Length")
	assert.ErrorContains(t, read("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), "bad Content-Length")
	assert.ErrorContains(t, read("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"), "read body")
	assert.ErrorContains(t, read(""), "read status line")
}

func TestRawListenBusyPort(t *testing.T) {
	fd, err := rawListen("127.0.0.1:0")
	require.NoError(t, err)
	a, err := sockAddr(fd)
	require.NoError(t, err)
	port := a.(*net.TCPAddr).Port
	assert.Positive(t, port)
	_, err = rawListen(a.String())
	assert.ErrorContains(t, err, "address already in use")
	require.NoError(t, unix.Close(fd))
}

func TestParseOpenFilesLimit(t *testing.T) {
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             unlimited            unlimited            processes \n" +
		"Max open files            20000                40000                files     \n"
	n, ok := parseOpenFilesLimit([]byte(limits))
	require.True(t, ok)
	assert.Equal(t, 20000, n)
	_, ok = parseOpenFilesLimit([]byte("Max open files            unlimited  unlimited files\n"))
	assert.False(t, ok)
	_, ok = parseOpenFilesLimit(nil)
	assert.False(t, ok)
	open, limit, near := fdPressure(os.Getpid())
	assert.Positive(t, open)
	assert.Positive(t, limit)
	assert.False(t, near)
}
