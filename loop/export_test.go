package loop

// ChooseDefault is Default's rule, for tests.
var ChooseDefault = chooseDefault

// SetGosched replaces runtime.Gosched for Batch.Yield until restore.
func SetGosched(fn func()) (restore func()) {
	old := gosched
	gosched = fn
	return func() { gosched = old }
}
