package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// TestBackendErrorClass: the errors the chat backend really returns, each
// against a backend that fails that way, map to their class.
func TestBackendErrorClass(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/v1"
	}()
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprint(w, `{"error":{"message":"nope, walrus"}}`)
		}
	}
	sse := func(lines ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, l := range lines {
				fmt.Fprintf(w, "data: %s\n\n", l)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc // nil: base is used as is
		base    string
		want    string
	}{
		{name: "500", handler: status(500), want: errClassHTTP5xx},
		{name: "400", handler: status(400), want: errClassHTTP4xx},
		{name: "429", handler: status(429), want: errClassRateLimit},
		{name: "malformed", handler: sse("{walrus"), want: errClassMalformedStream},
		{name: "cut", handler: sse(`{"choices":[{"index":0,"delta":{"content":"half"}}]}`), want: errClassStreamEnded},
		{name: "crash", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"half\"}}]}\n\n")
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, want: errClassClosed},
		{name: "timeout", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // a body read to its end lets the server see the client leave
			select {
			case <-hang:
			case <-r.Context().Done():
			case <-time.After(10 * time.Second): // bounded, whatever happens
			}
		}, want: errClassTimeout},
		{name: "refused", base: refused, want: errClassRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if tc.handler != nil {
				hs := httptest.NewServer(tc.handler)
				defer hs.Close()
				base = hs.URL + "/v1"
			}
			m := ChatBackend(ChatBackendOptions{BaseURL: base, RateLimitRetries: -1, Timeout: 200 * time.Millisecond})
			_, err := m.Respond(t.Context(), &ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			require.Error(t, err)
			assert.Equal(t, tc.want, backendErrorClass(err), "%v", err)
		})
	}
	assert.Equal(t, errClassPanic, backendErrorClass(errModelPanicked))
	assert.Equal(t, errClassNoOutput, backendErrorClass(nil))
}

type kindJob string

func (k kindJob) Kind() string { return string(k) }

// TestJobKindLabels: the job metrics name each job kind shortly: round,
// cancel, expire, ingest.
func TestJobKindLabels(t *testing.T) {
	m := newMetrics()
	work := m.timedWork(func(context.Context, store.JobArgs) error { return nil })
	for _, k := range []string{kindRunRound, kindRunCancel, kindRunExpire, kindIngestFile} {
		require.NoError(t, work(t.Context(), kindJob(k)))
	}
	mfs, err := m.reg.Gather()
	require.NoError(t, err)
	var kinds []string
	for _, mf := range mfs {
		if mf.GetName() != "assistants_job_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "kind" {
					kinds = append(kinds, l.GetValue())
				}
			}
		}
	}
	require.ElementsMatch(t, []string{"round", "cancel", "expire", "ingest"}, kinds)
}
