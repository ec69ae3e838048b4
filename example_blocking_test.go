package evhub_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/evhub/evhub"
)

// A task runs a blocking call (here reading a regular file, which no
// event loop can wait for) off its hub: the hub's other tasks keep
// running meanwhile.
func ExampleBlocking() {
	hub, err := evhub.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	f, err := os.CreateTemp("", "evhub-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	fmt.Fprint(f, "read off the hub")
	f.Close()
	task, err := hub.Go(func(ctx context.Context) error {
		b, err := evhub.BlockingValue(ctx, func() ([]byte, error) { return os.ReadFile(f.Name()) })
		fmt.Println(string(b))
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := task.Wait(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output: read off the hub
}

// A subprocess from a task: Output parks the task, not the hub.
func ExampleCommand() {
	hub, err := evhub.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	task, err := hub.Go(func(ctx context.Context) error {
		out, err := evhub.CommandContext(ctx, hub, "echo", "hello from a child").Output()
		fmt.Print(string(out))
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := task.Wait(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output: hello from a child
}

// A hub pipe read by one task and written by another, with a deadline.
func ExampleHub_Pipe() {
	hub, err := evhub.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	r, w, err := hub.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if _, err := hub.Go(func(ctx context.Context) error {
		defer w.Close()
		_, err := w.WriteString("through the pipe")
		return err
	}); err != nil {
		log.Fatal(err)
	}
	task, err := hub.Go(func(ctx context.Context) error {
		if err := r.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		var sb strings.Builder
		buf := make([]byte, 64)
		for {
			n, err := r.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				fmt.Println(sb.String())
				return nil
			}
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = task.Wait(context.Background())
	// Output: through the pipe
}

// Lookups from a task park the task, not the hub; the hub's resolver is
// net.DefaultResolver unless SetResolver says otherwise.
func ExampleHub_Resolver() {
	hub, err := evhub.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	task, err := hub.Go(func(ctx context.Context) error {
		addrs, err := hub.Resolver().LookupHost(ctx, "localhost")
		fmt.Println(err == nil && len(addrs) > 0)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = task.Wait(context.Background())
	// Output: true
}
