//go:build uring && cgo

package cnop

import (
	"strconv"
	"testing"
)

// BenchmarkSubmit is the uring backend's BenchmarkSubmit in C on liburing:
// ns per NOP request, batch requests per io_uring_enter.
func BenchmarkSubmit(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			if err := Run(b.N, n); err != nil {
				b.Fatal(err)
			}
		})
	}
}
