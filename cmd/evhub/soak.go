package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/soak"
)

func init() {
	register("soak", "a mixed, verified load on one hub for a duration; fails on any wrong byte or leak", runSoak)
}

func runSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	backend := fs.String("backend", "netpoll", "backend ("+fmt.Sprint(loop.Names())+")")
	duration := fs.Duration("duration", time.Minute, "how long the load runs")
	interval := fs.Duration("interval", 10*time.Second, "report interval")
	clients := fs.Int("clients", 16, "concurrent clients")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := evhub.Open(*backend)
	if err != nil {
		return err
	}
	fmt.Printf("soak: backend %s, %v, %d clients, seed %d\n", *backend, *duration, *clients, *seed)
	st, err := soak.Run(h, soak.Config{Duration: *duration, Interval: *interval, Clients: *clients, Seed: *seed})
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	fmt.Printf("soak: %d conns, %d bytes verified, %d slow readers, %d deadlines mid-transfer, %d datagrams (%d lost), %d task ticks\n",
		st.Conns, st.Bytes, st.SlowReads, st.Deadlines, st.Datagrams, st.DatagramsLost, st.Ticks)
	return err
}
