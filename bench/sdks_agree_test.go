package bench

import (
	"context"
	"testing"
)

// TestSDKsAgree runs every operation once per SDK and checks the answer, so
// that the benchmarks measure clients that decode the fixtures correctly.
func TestSDKsAgree(t *testing.T) {
	cl := newClients(t)
	ctx := context.Background()
	groups := []struct {
		name  string
		cases []sdkCase
		want  func(testing.TB, summary)
	}{
		{"RetrieveRun", cl.retrieveRun(), wantRun},
		{"ListMessages", cl.listMessages(), wantPage},
		{"CreateMessage", cl.createMessage(), wantCreated},
		{"StreamRun", cl.streamRun(), wantStream},
		{"PollRun", cl.pollRun(newPollRunID("test")), func(tb testing.TB, s summary) {
			tb.Helper()
			wantPolled(tb, s)
			// One GET per 10 ms hint over 50 ms, plus the one that sees
			// the completion; a little slack for a slow machine.
			if s.Polls > pollSteps+2 {
				tb.Errorf("made %d GETs, the hints call for %d", s.Polls, pollSteps+1)
			}
		}},
	}
	for _, g := range groups {
		for _, c := range g.cases {
			t.Run(g.name+"/sdk="+c.name, func(t *testing.T) {
				if c.skip != "" {
					t.Skip(c.skip)
				}
				s, err := c.op(ctx)
				if err != nil {
					t.Fatal(err)
				}
				g.want(t, s)
			})
		}
	}
	for _, c := range cl.pageAll() {
		t.Run("PageAll/sdk="+c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			s, err := c.iterate(ctx, itemsThread(pageAllSmall), func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			wantAll(t, s, pageAllSmall)
		})
	}
}
