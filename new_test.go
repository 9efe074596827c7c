package assistants

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

func TestNewWithGeneratedClient(t *testing.T) {
	clearEnv(t)
	const asst = `{"id":"asst_1","object":"assistant","created_at":1,"model":"gpt-4o","name":null,"description":null,"instructions":null,"metadata":null,"tools":[]}`
	srv := newScriptServer(t,
		step{status: 200, body: asst},
		step{status: 404, body: `{"error":{"message":"No assistant found with id 'asst_x'.","type":"invalid_request_error","param":null,"code":null}}`, header: map[string]string{"x-request-id": "req_404"}},
		step{status: 503, body: `{"error":{"message":"busy","type":"server_error","param":null,"code":null}}`},
		step{status: 200, body: asst},
		step{status: 200, body: "<html>ok</html>", header: map[string]string{"Content-Type": "text/html"}},
	)
	caller := &http.Client{}
	rec := &sleepRecorder{}
	c, err := New(WithBaseURL(srv.URL+"/v1/"), WithAPIKey(testKey), WithHTTPClient(caller), withSleep(rec.sleep), noJitter)
	require.NoError(t, err)
	ctx := t.Context()

	got, err := Result[gen.AssistantObject](c.GetAssistantWithResponse(ctx, "asst_1"))
	require.NoError(t, err)
	assert.Equal(t, "asst_1", got.Id)
	assert.Equal(t, "gpt-4o", got.Model)

	_, err = Result[gen.AssistantObject](c.GetAssistantWithResponse(ctx, "asst_x"))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.True(t, IsNotFound(err))
	assert.Equal(t, "assistants: 404 invalid_request_error: No assistant found with id 'asst_x'. (request req_404)", err.Error())

	got, err = Result[gen.AssistantObject](c.GetAssistantWithResponse(ctx, "asst_1"))
	require.NoError(t, err, "the 503 was retried")
	assert.Equal(t, "asst_1", got.Id)

	_, err = Result[gen.AssistantObject](c.GetAssistantWithResponse(ctx, "asst_1"))
	assert.ErrorIs(t, err, ErrUnexpectedReply)
	assert.Contains(t, err.Error(), "text/html")

	_, err = Result[gen.ThreadObject](c.GetAssistantWithResponse(ctx, "asst_1"))
	assert.ErrorIs(t, err, ErrUnexpectedReply, "T must match the reply's JSON200")

	att := srv.Attempts()
	require.Len(t, att, 6)
	assert.Equal(t, "/v1/assistants/asst_1", att[0].Path)
	for _, a := range att {
		assert.Equal(t, "Bearer "+testKey, a.Header.Get("Authorization"))
		assert.Equal(t, "assistants=v2", a.Header.Get("OpenAI-Beta"))
		assert.True(t, strings.HasPrefix(a.Header.Get("User-Agent"), "assistants-go/"+Version))
	}
	assert.Nil(t, caller.Transport, "the caller's client is not modified")
	assert.Nil(t, caller.CheckRedirect)
}

func TestNewPostReplaysGeneratedJSONBody(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 500}, step{status: 200, body: `{"id":"thread_1","object":"thread","created_at":1,"metadata":null,"tool_resources":null}`})
	rec := &sleepRecorder{}
	c, err := New(WithBaseURL(srv.URL), WithAPIKey(testKey), withSleep(rec.sleep))
	require.NoError(t, err)

	_, err = Result[gen.ThreadObject](c.CreateThreadWithResponse(t.Context(), gen.CreateThreadJSONRequestBody{}))
	require.NoError(t, err)

	att := srv.Attempts()
	require.Len(t, att, 2)
	assert.Equal(t, att[0].Body, att[1].Body)
	assert.NotEmpty(t, att[0].Body)
	assert.Equal(t, att[0].Header.Get("Idempotency-Key"), att[1].Header.Get("Idempotency-Key"))
	assert.Equal(t, []string{"0", "1"}, []string{att[0].Header.Get("X-Retry-Count"), att[1].Header.Get("X-Retry-Count")})
}

func TestNewAzure(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 200, body: `{"id":"asst_1","object":"assistant","created_at":1,"model":"m","name":null,"description":null,"instructions":null,"metadata":null,"tools":[]}`})
	c, err := New(WithAzure(srv.URL, "2024-05-01-preview"), WithAPIKey("azure-key-1"))
	require.NoError(t, err)

	_, err = Result[gen.AssistantObject](c.GetAssistantWithResponse(t.Context(), "asst_1"))
	require.NoError(t, err)

	a := srv.Attempts()[0]
	assert.Equal(t, "/openai/assistants/asst_1", a.Path)
	assert.Equal(t, "api-version=2024-05-01-preview", a.RawQuery)
	assert.Equal(t, "azure-key-1", a.Header.Get("api-key"))
	assert.Empty(t, a.Header.Values("Authorization"))
}

func TestNewInvalidOption(t *testing.T) {
	clearEnv(t)
	c, err := New(WithMaxRetries(-3))
	assert.Nil(t, c)
	assert.Error(t, err)
}
