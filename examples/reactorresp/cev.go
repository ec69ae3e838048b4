//go:build cev

package main

import _ "github.com/evhub/evhub/backends/cev"
