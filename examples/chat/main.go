// Command chat is a long-polling web chat in the manner of gevent's
// webchat example: a client asks for the messages after the last one it
// has; if there are none it waits on an Event, and posting a message sets
// that Event, waking every waiting client at once. The HTTP server runs
// on an evhub listener; the waiting is the hub's.
//
//	go run ./examples/chat -addr 127.0.0.1:8000
//	curl -d 'hello' 127.0.0.1:8000/post
//	curl '127.0.0.1:8000/poll?after=0'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evhub/evhub"
)

// Room holds the messages and the Event that the next message will set.
type Room struct {
	mu       sync.Mutex
	messages []string
	next     *evhub.Event
}

// NewRoom returns an empty room.
func NewRoom() *Room { return &Room{next: new(evhub.Event)} }

// Post appends a message and wakes every waiting client.
func (r *Room) Post(msg string) {
	r.mu.Lock()
	r.messages = append(r.messages, msg)
	ev := r.next
	r.next = new(evhub.Event)
	r.mu.Unlock()
	ev.Set()
}

// Poll returns the messages after the first `after`, waiting (until ctx is
// done) for one if there are none yet.
func (r *Room) Poll(ctx context.Context, after int) ([]string, error) {
	for {
		r.mu.Lock()
		if after < len(r.messages) {
			out := append([]string(nil), r.messages[after:]...)
			r.mu.Unlock()
			return out, nil
		}
		ev := r.next
		r.mu.Unlock()
		if err := ev.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// Handler serves /post (POST body is the message) and /poll?after=N.
func (r *Room) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /post", func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(io.LimitReader(req.Body, 4096))
		if err != nil || len(b) == 0 {
			http.Error(w, "empty message", http.StatusBadRequest)
			return
		}
		r.Post(string(b))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, req *http.Request) {
		after, err := strconv.Atoi(req.URL.Query().Get("after"))
		if err != nil || after < 0 {
			http.Error(w, "after must be a non-negative integer", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), 30*time.Second)
		defer cancel()
		msgs, err := r.Poll(ctx, after)
		if err != nil {
			w.WriteHeader(http.StatusNoContent) // no news: poll again
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(msgs)
	})
	return mux
}

// Serve runs the chat on ln until it is closed.
func Serve(ln net.Listener, r *Room) error {
	return http.Serve(ln, r.Handler())
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "address to listen on")
	backend := flag.String("backend", evhub.DefaultBackend(), "loop backend: one of "+strings.Join(evhub.Backends(), ", "))
	flag.Parse()
	hub, err := evhub.Open(*backend)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ln, err := hub.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("chat on http://%s (backend %s)", ln.Addr(), hub.Backend())
	log.Fatal(Serve(ln, NewRoom()))
}
