//go:build cev

package cev_test

import (
	"testing"

	"github.com/evhub/evhub/backends/cev"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

func openLoop() (loop.Loop, error) { return cev.New() }

// The loop conformance suite on cev (also run by conformance.TestBackends
// with -tags cev).
func TestConformance(t *testing.T) { conformance.TestLoop(t, openLoop) }

func BenchmarkConformance(b *testing.B) { conformance.BenchmarkLoop(b, openLoop) }
