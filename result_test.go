package assistants

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Stand-ins with the shape oapi-codegen generates for replies.
type thing struct{ ID string }

type errorBody struct{ Error struct{ Message string } }

type getThingReply struct {
	Body         []byte
	HTTPResponse *http.Response
	JSON200      *thing
	JSONDefault  *errorBody
}

func (r getThingReply) Status() string {
	if r.HTTPResponse != nil {
		return r.HTTPResponse.Status
	}
	return http.StatusText(0)
}

func (r getThingReply) StatusCode() int {
	if r.HTTPResponse != nil {
		return r.HTTPResponse.StatusCode
	}
	return 0
}

type createThingReply struct {
	Body         []byte
	HTTPResponse *http.Response
	JSON201      *thing
	hidden       *thing //lint:ignore U1000 Result must skip unexported fields, not read them
}

func (r createThingReply) Status() string  { return "" }
func (r createThingReply) StatusCode() int { return 0 }

type notAStruct int

func (notAStruct) Status() string  { return "" }
func (notAStruct) StatusCode() int { return 0 }

func httpResp(status int, contentType string) *http.Response {
	h := http.Header{"X-Request-Id": {"req_9"}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h}
}

func TestResult(t *testing.T) {
	ok := &thing{ID: "t1"}
	callErr := errors.New("dial tcp: connection refused")
	tests := []struct {
		name       string
		reply      Reply
		err        error
		want       *thing
		wantIs     error
		wantAPI    *APIError
		wantSubstr string
	}{
		{name: "200", reply: &getThingReply{HTTPResponse: httpResp(200, "application/json"), JSON200: ok}, want: ok},
		{name: "value reply", reply: getThingReply{HTTPResponse: httpResp(200, "application/json"), JSON200: ok}, want: ok},
		{name: "201 field", reply: &createThingReply{HTTPResponse: httpResp(201, "application/json"), JSON201: ok}, want: ok},
		{name: "call error passes through", reply: (*getThingReply)(nil), err: callErr, wantIs: callErr, wantSubstr: "request failed"},
		{name: "context error passes through", reply: (*getThingReply)(nil), err: context.Canceled, wantIs: context.Canceled},
		{
			name:    "404",
			reply:   &getThingReply{HTTPResponse: httpResp(404, "application/json"), Body: []byte(`{"error":{"message":"No thing","type":"invalid_request_error","code":"not_found"}}`), JSONDefault: &errorBody{}},
			wantAPI: &APIError{StatusCode: 404, Type: "invalid_request_error", Code: "not_found", Message: "No thing", RequestID: "req_9"},
		},
		{
			name:    "500 without body",
			reply:   &getThingReply{HTTPResponse: httpResp(500, "")},
			wantAPI: &APIError{StatusCode: 500, RequestID: "req_9"},
		},
		{name: "2xx without decoded JSON", reply: &getThingReply{HTTPResponse: httpResp(200, "text/html"), Body: []byte("<html>")}, wantIs: ErrUnexpectedReply, wantSubstr: `"text/html"`},
		{name: "nil pointer reply", reply: (*getThingReply)(nil), wantIs: ErrUnexpectedReply},
		{name: "nil interface reply", reply: nil, wantIs: ErrUnexpectedReply},
		{name: "no HTTP response", reply: &getThingReply{}, wantIs: ErrUnexpectedReply},
		{name: "not a struct", reply: notAStruct(1), wantIs: ErrUnexpectedReply},
		{name: "202 with no matching field", reply: &createThingReply{HTTPResponse: httpResp(202, "application/json")}, wantIs: ErrUnexpectedReply, wantSubstr: "status 202"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Result[thing](tt.reply, tt.err)
			switch {
			case tt.want != nil:
				require.NoError(t, err)
				assert.Same(t, tt.want, got)
			case tt.wantAPI != nil:
				assert.Nil(t, got)
				var e *APIError
				require.ErrorAs(t, err, &e)
				e.Body, e.Header = nil, nil
				assert.Equal(t, tt.wantAPI, e)
			default:
				assert.Nil(t, got)
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.wantIs)
				assert.Contains(t, err.Error(), tt.wantSubstr)
			}
		})
	}
}

func TestResultTypeMismatch(t *testing.T) {
	reply := &getThingReply{HTTPResponse: httpResp(200, "application/json"), JSON200: &thing{}}
	got, err := Result[errorBody](reply, nil)
	assert.Nil(t, got)
	assert.ErrorIs(t, err, ErrUnexpectedReply)
	assert.Contains(t, err.Error(), "JSON200")

	// The mismatch is reported even when the field is nil.
	reply.JSON200 = nil
	_, err = Result[errorBody](reply, nil)
	assert.ErrorIs(t, err, ErrUnexpectedReply)
	assert.Contains(t, err.Error(), "Result[assistants.errorBody]")
}

func TestResultLayoutIsCached(t *testing.T) {
	reply := &getThingReply{HTTPResponse: httpResp(200, "application/json"), JSON200: &thing{}}
	_, err := Result[thing](reply, nil)
	require.NoError(t, err)
	typ := reflect.TypeFor[getThingReply]()
	assert.Same(t, layoutOf(typ), layoutOf(typ))
	allocs := testing.AllocsPerRun(100, func() { _, _ = Result[thing](reply, nil) })
	assert.LessOrEqual(t, allocs, 1.0, "no per-call reflection work beyond reading fields")
}
