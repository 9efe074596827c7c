package assistants

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Reply is the method set of every reply type the generated client returns
// (gen.GetRunReply, gen.CreateThreadReply, ...; pass the pointer the call
// returned). Result also reads their exported fields Body, HTTPResponse and
// JSON200 (or JSON201, ... matching the status).
type Reply interface {
	Status() string
	StatusCode() int
}

// ErrUnexpectedReply is wrapped by Result's error when a call succeeded at
// the HTTP level but its reply cannot be returned as a *T: there is no HTTP
// response, the 2xx body was not decoded (e.g. the reply was not
// application/json), or T is not the type the reply holds.
var ErrUnexpectedReply = errors.New("assistants: unexpected reply")

// Result turns a generated call's (reply, err) pair into (*T, error):
//
//	run, err := assistants.Result[gen.RunObject](c.GetRunWithResponse(ctx, threadID, runID))
//
// A non-nil err is returned wrapped ("assistants: request failed: %w"). A
// non-2xx status gives an *APIError built from the reply's HTTPResponse and
// Body. A 2xx status gives the reply's JSON<status> field (JSON200 as the
// fallback) when it is a non-nil *T. Anything else (nil reply, no response,
// no decoded body, T not matching) gives an error wrapping
// ErrUnexpectedReply; Result never panics.
func Result[T any](reply Reply, err error) (*T, error) {
	if err != nil {
		return nil, fmt.Errorf("assistants: request failed: %w", err)
	}
	v := reflect.ValueOf(reply)
	if !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return nil, fmt.Errorf("%w: nil reply", ErrUnexpectedReply)
	}
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %T is not a generated reply", ErrUnexpectedReply, reply)
	}
	l := layoutOf(v.Type())

	var resp *http.Response
	if l.resp >= 0 {
		resp = v.Field(l.resp).Interface().(*http.Response)
	}
	if resp == nil {
		return nil, fmt.Errorf("%w: %s has no HTTP response", ErrUnexpectedReply, l.name)
	}
	body := []byte{}
	if l.body >= 0 {
		if b := v.Field(l.body).Bytes(); b != nil {
			body = b
		}
	}
	code := resp.StatusCode
	if code < 200 || code > 299 {
		return nil, NewAPIError(resp, body)
	}
	f, ok := l.json[code]
	if !ok {
		f, ok = l.json[http.StatusOK]
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no JSON field for status %d", ErrUnexpectedReply, l.name, code)
	}
	if want := reflect.TypeFor[*T](); f.typ != want {
		return nil, fmt.Errorf("%w: Result[%s] used with %s, whose %s is %s", ErrUnexpectedReply, want.Elem(), l.name, f.name, f.typ)
	}
	out := v.Field(f.index).Interface().(*T)
	if out == nil {
		return nil, fmt.Errorf("%w: %d reply of %s has no decoded JSON body (Content-Type %q)",
			ErrUnexpectedReply, code, l.name, resp.Header.Get("Content-Type"))
	}
	return out, nil
}

// replyLayout records where a reply struct type keeps what Result reads.
type replyLayout struct {
	name       string
	resp, body int // field index, -1 when absent or of another type
	json       map[int]jsonField
}

type jsonField struct {
	index int
	name  string
	typ   reflect.Type
}

// layouts caches a *replyLayout per reply struct type.
var layouts sync.Map

var (
	responseType = reflect.TypeFor[*http.Response]()
	bytesType    = reflect.TypeFor[[]byte]()
)

func layoutOf(t reflect.Type) *replyLayout {
	if l, ok := layouts.Load(t); ok {
		return l.(*replyLayout)
	}
	l := &replyLayout{name: t.String(), resp: -1, body: -1, json: map[int]jsonField{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		switch {
		case sf.Name == "HTTPResponse" && sf.Type == responseType:
			l.resp = i
		case sf.Name == "Body" && sf.Type == bytesType:
			l.body = i
		case strings.HasPrefix(sf.Name, "JSON") && sf.Type.Kind() == reflect.Pointer:
			if code, err := strconv.Atoi(strings.TrimPrefix(sf.Name, "JSON")); err == nil {
				l.json[code] = jsonField{index: i, name: sf.Name, typ: sf.Type}
			}
		}
	}
	actual, _ := layouts.LoadOrStore(t, l)
	return actual.(*replyLayout)
}
