package conformance_test

import (
	"os"
	"testing"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// EnvFuzzBackend restricts FuzzHubs to one backend while fuzzing:
// EVHUB_FUZZ_BACKEND=gnet go test -run XXX -fuzz FuzzHubs ./conformance/
const envFuzzBackend = "EVHUB_FUZZ_BACKEND"

// FuzzHubs compares a hub of every registered backend (or the one named
// by EVHUB_FUZZ_BACKEND) with the standard library on every input; the
// seed corpus is testdata/fuzz/FuzzHubs.
func FuzzHubs(f *testing.F) {
	var targets []conformance.FuzzTarget
	for _, name := range loop.Names() {
		if b := os.Getenv(envFuzzBackend); b != "" && b != name {
			continue
		}
		targets = append(targets, conformance.FuzzTarget{Name: name, Open: func() (conformance.Network, func() error, error) {
			h, err := evhub.Open(name)
			if err != nil {
				return nil, nil, err
			}
			return h, h.Close, nil
		}})
	}
	if len(targets) == 0 {
		f.Fatalf("%s=%q names no registered backend (%v)", envFuzzBackend, os.Getenv(envFuzzBackend), loop.Names())
	}
	conformance.FuzzNetworks(f, targets...)
}
