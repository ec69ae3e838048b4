package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// portRE matches an IPv4 or bracketed IPv6 address followed by a port.
var portRE = regexp.MustCompile(`((?:\d{1,3}\.){3}\d{1,3}|\[[0-9A-Fa-f:.%a-zA-Z]*\]):\d+`)

// normPorts replaces the port of every host:port in s with PORT: ephemeral
// ports differ between the two sides of a comparison.
func normPorts(s string) string { return portRE.ReplaceAllString(s, "${1}:PORT") }

// sentinel is an error value that errors.Is must answer identically on both
// sides of a comparison.
type sentinel struct {
	name string
	err  error
}

var sentinels = []sentinel{
	{"net.ErrClosed", net.ErrClosed},
	{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded},
	{"io.EOF", io.EOF},
	{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF},
	{"syscall.ECONNREFUSED", syscall.ECONNREFUSED},
	{"syscall.EADDRINUSE", syscall.EADDRINUSE},
	{"syscall.ECONNRESET", syscall.ECONNRESET},
	{"syscall.EPIPE", syscall.EPIPE},
	{"syscall.ENOENT", syscall.ENOENT},
	{"syscall.EINVAL", syscall.EINVAL},
	{"syscall.EMSGSIZE", syscall.EMSGSIZE},
	{"os.ErrNotExist", os.ErrNotExist},
	{"context.Canceled", context.Canceled},
	{"context.DeadlineExceeded", context.DeadlineExceeded},
	{"errors.ErrUnsupported", errors.ErrUnsupported},
}

// describeErr renders what must match between the reference and the
// network under test: every error along the Unwrap chain with its concrete
// type and fields (addresses normalised by norm), the errors.Is answers for
// the sentinels, and net.Error's Timeout.
func describeErr(err error, norm func(string) string) []string {
	if err == nil {
		return []string{"<nil>"}
	}
	var out []string
	out = append(out, "Error() = "+fmt.Sprintf("%q", norm(err.Error())))
	for level, e := 0, err; e != nil; level++ {
		d := fmt.Sprintf("chain[%d] %T", level, e)
		switch v := e.(type) {
		case *net.OpError:
			d += fmt.Sprintf(" Op=%q Net=%q Source=%s Addr=%s", v.Op, v.Net, describeAddr(v.Source, norm), describeAddr(v.Addr, norm))
		case *os.SyscallError:
			d += fmt.Sprintf(" Syscall=%q", v.Syscall)
		case syscall.Errno:
			d += fmt.Sprintf(" errno=%d", uintptr(v))
		case *net.AddrError:
			d += fmt.Sprintf(" Err=%q Addr=%q", v.Err, norm(v.Addr))
		case *net.DNSError:
			d += fmt.Sprintf(" Err=%q Name=%q IsNotFound=%v IsTimeout=%v", v.Err, norm(v.Name), v.IsNotFound, v.IsTimeout)
		case *net.ParseError:
			d += fmt.Sprintf(" Type=%q Text=%q", v.Type, v.Text)
		case net.UnknownNetworkError:
			d += fmt.Sprintf(" %q", string(v))
		}
		d += fmt.Sprintf(" %q", norm(e.Error()))
		out = append(out, d)
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for i, je := range j.Unwrap() {
				out = append(out, fmt.Sprintf("chain[%d] joined[%d]: %v", level, i, describeErr(je, norm)))
			}
			break
		}
		e = errors.Unwrap(e)
	}
	for _, s := range sentinels {
		out = append(out, fmt.Sprintf("errors.Is(%s) = %v", s.name, errors.Is(err, s.err)))
	}
	var ne net.Error
	if errors.As(err, &ne) {
		out = append(out, fmt.Sprintf("net.Error Timeout() = %v", ne.Timeout()))
	} else {
		out = append(out, "net.Error: none in chain")
	}
	return out
}

// describeAddr renders an address field: a nil interface, a typed nil and
// a real address print differently in net's messages, so they must differ
// here too.
func describeAddr(a net.Addr, norm func(string) string) string {
	if a == nil {
		return "nil"
	}
	if v := reflect.ValueOf(a); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Sprintf("%T(nil)", a)
	}
	return fmt.Sprintf("%T{%s %q}", a, a.Network(), norm(a.String()))
}

// compareErr fails t unless got (from the network under test) matches ref
// (from the standard library) in everything describeErr shows. want lists
// sentinels ref itself must satisfy: that checks the case provokes the
// error it claims to.
func compareErr(t *testing.T, what string, std, got *side, ref, gotErr error, want ...error) {
	t.Helper()
	if ref == nil {
		t.Fatalf("%s: the standard library returned no error: the case is wrong", what)
	}
	for _, w := range want {
		if !errors.Is(ref, w) {
			t.Fatalf("%s: the standard library's error %q is not %v: the case is wrong", what, ref, w)
		}
	}
	if gotErr == nil {
		t.Errorf("%s: no error; the standard library returned %q", what, ref)
		return
	}
	assert.Equal(t, describeErr(ref, std.norm), describeErr(gotErr, got.norm),
		"%s: error differs from the standard library's\n std: %v\n net: %v", what, ref, gotErr)
}

// sideBySide performs op on the standard library and on the network under
// test, and compares the errors.
func (e *env) sideBySide(what string, op func(s *side) error, want ...error) {
	e.t.Helper()
	std, got := e.sides()
	ref := op(std)
	gotErr := op(got)
	compareErr(e.t, what, std, got, ref, gotErr, want...)
}

// sameAddr fails t unless got (from the network under test) has the same
// concrete type, network and normalised text as ref.
func sameAddr(t *testing.T, what string, std, got *side, ref, gotAddr net.Addr) {
	t.Helper()
	assert.Equal(t, describeAddr(ref, std.norm), describeAddr(gotAddr, got.norm), "%s differs from the standard library's", what)
}
