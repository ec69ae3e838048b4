package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub"
)

// Ten clients long-poll; one post wakes them all with the message.
func TestLongPollingChat(t *testing.T) {
	for _, backend := range evhub.Backends() {
		t.Run(backend, func(t *testing.T) {
			hub, err := evhub.Open(backend)
			require.NoError(t, err)
			defer hub.Close()
			ln, err := hub.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			room := NewRoom()
			go func() { _ = Serve(ln, room) }()
			defer ln.Close()
			base := "http://" + ln.Addr().String()
			client := &http.Client{Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()

			const n = 10
			var wg sync.WaitGroup
			got := make([][]string, n)
			errs := make([]error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := client.Get(base + "/poll?after=0")
					if err != nil {
						errs[i] = err
						return
					}
					defer resp.Body.Close()
					errs[i] = json.NewDecoder(resp.Body).Decode(&got[i])
				}()
			}
			time.Sleep(50 * time.Millisecond) // the clients are now waiting
			resp, err := client.Post(base+"/post", "text/plain", strings.NewReader("hello, room"))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode)
			wg.Wait()
			for i := 0; i < n; i++ {
				require.NoError(t, errs[i])
				require.Equal(t, []string{"hello, room"}, got[i])
			}
			resp, err = client.Get(base + "/poll?after=x")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		})
	}
}
