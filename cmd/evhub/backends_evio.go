package main

// The command line always has the evio backend.
import _ "github.com/evhub/evhub/backends/evio"
