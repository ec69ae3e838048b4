package hubexec_test

import (
	"bufio"
	"context"
	"fmt"
	"log"

	"github.com/evhub/evhub/hubexec"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// A task reads a child's output line by line; the hub's other tasks run
// while it waits.
func ExampleCmd_StdoutPipe() {
	l, err := loop.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	hub, err := scheduler.New(l)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	task, err := hub.Go(func(ctx context.Context) error {
		cmd := hubexec.CommandContext(ctx, hub, "sh", "-c", "echo one; echo two")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Println("child said:", sc.Text())
		}
		return cmd.Wait()
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := task.Wait(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// child said: one
	// child said: two
}
