package server_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

func TestListPaging(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	var ids []string // creation order
	for range 5 {
		r, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"})
		require.NoError(t, err)
		ids = append(ids, r.JSON200.Id)
	}
	desc := slices.Clone(ids)
	slices.Reverse(desc)

	list := func(order string, limit int, after, before string) *gen.ListAssistantsResponse {
		t.Helper()
		p := &gen.ListAssistantsParams{Limit: &limit}
		if order != "" {
			o := gen.ListAssistantsParamsOrder(order)
			p.Order = &o
		}
		if after != "" {
			p.After = &after
		}
		if before != "" {
			p.Before = &before
		}
		r, err := c.ListAssistantsWithResponse(ctx, p)
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		assert.Equal(t, gen.ListAssistantsResponseObjectType("list"), r.JSON200.Object)
		return r.JSON200
	}
	idsOf := func(l *gen.ListAssistantsResponse) []string {
		var out []string
		for _, a := range l.Data {
			out = append(out, a.Id)
		}
		return out
	}
	walk := func(order string, want []string) {
		t.Helper()
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10, "paging does not end")
			l := list(order, 2, after, "")
			got = append(got, idsOf(l)...)
			if len(l.Data) > 0 {
				assert.Equal(t, l.Data[0].Id, l.FirstId)
				assert.Equal(t, l.Data[len(l.Data)-1].Id, l.LastId)
			}
			if !l.HasMore {
				break
			}
			after = l.LastId
		}
		assert.Equal(t, want, got)
	}

	t.Run("default is desc, limit 20", func(t *testing.T) {
		r, err := c.ListAssistantsWithResponse(ctx, nil)
		require.NoError(t, err)
		assert.Equal(t, desc, idsOf(r.JSON200))
		assert.False(t, r.JSON200.HasMore)
	})
	t.Run("desc pages with after", func(t *testing.T) { walk("desc", desc) })
	t.Run("asc pages with after", func(t *testing.T) { walk("asc", ids) })
	t.Run("first page has_more", func(t *testing.T) {
		l := list("asc", 2, "", "")
		assert.Equal(t, ids[:2], idsOf(l))
		assert.True(t, l.HasMore)
		l = list("asc", 5, "", "")
		assert.False(t, l.HasMore)
	})
	t.Run("before, asc", func(t *testing.T) {
		l := list("asc", 2, "", ids[4])
		assert.Equal(t, ids[2:4], idsOf(l), "the items right before the cursor")
		assert.True(t, l.HasMore)
		l = list("asc", 10, "", ids[2])
		assert.Equal(t, ids[:2], idsOf(l))
		assert.False(t, l.HasMore)
	})
	t.Run("before, desc", func(t *testing.T) {
		l := list("desc", 2, "", desc[3])
		assert.Equal(t, desc[1:3], idsOf(l))
		assert.True(t, l.HasMore)
	})
	t.Run("after and before", func(t *testing.T) {
		l := list("asc", 10, ids[0], ids[4])
		assert.Equal(t, ids[1:4], idsOf(l))
		assert.False(t, l.HasMore)
	})
	t.Run("past the end", func(t *testing.T) {
		l := list("asc", 10, ids[4], "")
		assert.Empty(t, l.Data)
		assert.Empty(t, l.FirstId)
		assert.False(t, l.HasMore)
	})
	t.Run("bad limit and order", func(t *testing.T) {
		for _, limit := range []int{0, 101} {
			r, err := c.ListAssistantsWithResponse(ctx, &gen.ListAssistantsParams{Limit: &limit})
			require.NoError(t, err)
			requireAPIError(t, r, r.Body, 400, "limit")
		}
		o := gen.ListAssistantsParamsOrder("sideways")
		r, err := c.ListAssistantsWithResponse(ctx, &gen.ListAssistantsParams{Order: &o})
		require.NoError(t, err)
		requireAPIError(t, r, r.Body, 400, "order")
	})
}

func TestListMessagesRunFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(0))
		ctx, c := t.Context(), srv.Client
		a, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"})
		require.NoError(t, err)
		th, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{Messages: &[]gen.CreateMessageRequest{{Role: "user", Content: strContent("hello")}}})
		require.NoError(t, err)
		thread := th.JSON200.Id
		run, err := c.CreateRunWithResponse(ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.JSON200.Id})
		require.NoError(t, err)
		require.NotNil(t, run.JSON200, "body: %s", run.Body)
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()

		all, err := c.ListMessagesWithResponse(ctx, thread, nil)
		require.NoError(t, err)
		require.Len(t, all.JSON200.Data, 2, "the user's message and the reply")
		r, err := c.ListMessagesWithResponse(ctx, thread, &gen.ListMessagesParams{RunId: &run.JSON200.Id})
		require.NoError(t, err)
		require.NotNil(t, r.JSON200)
		require.Len(t, r.JSON200.Data, 1)
		assert.Equal(t, gen.MessageObjectRole("assistant"), r.JSON200.Data[0].Role)
		assert.Equal(t, run.JSON200.Id, *r.JSON200.Data[0].RunId)
		other := "run_none"
		r, err = c.ListMessagesWithResponse(ctx, thread, &gen.ListMessagesParams{RunId: &other})
		require.NoError(t, err)
		assert.Empty(t, r.JSON200.Data)
	})
}
