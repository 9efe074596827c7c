package server_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server"
)

// fuzzRoute is one operation: its method, its path with {placeholders}, and
// valid seed bodies.
type fuzzRoute struct {
	method, path string
	seeds        []string
}

// fuzzRoutes lists every operation of the API. Placeholders: {a} assistant,
// {t} thread, {m} message, {r} run, {s} step, {f} file, {vs} vector store,
// {b} batch.
var fuzzRoutes = []fuzzRoute{
	{"GET", "/assistants", nil},
	{"POST", "/assistants", []string{`{"model":"gpt-4o"}`, `{"model":"m","name":"n","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"metadata":{"a":"b"}}`}},
	{"GET", "/assistants/{a}", nil},
	{"POST", "/assistants/{a}", []string{`{"name":"x"}`, `{"tool_resources":{"file_search":{"vector_store_ids":["{vs}"]}}}`}},
	{"DELETE", "/assistants/{a}", nil},
	{"POST", "/threads", []string{`{}`, `{"messages":[{"role":"user","content":"hi"}]}`, `{"tool_resources":{"file_search":{"vector_stores":[{"file_ids":["{f}"]}]}}}`}},
	{"GET", "/threads/{t}", nil},
	{"POST", "/threads/{t}", []string{`{"metadata":{"k":"v"}}`}},
	{"DELETE", "/threads/{t}", nil},
	{"GET", "/threads/{t}/messages", nil},
	{"POST", "/threads/{t}/messages", []string{`{"role":"user","content":"hello"}`, `{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_file","image_file":{"file_id":"{f}"}}],"attachments":[{"file_id":"{f}","tools":[{"type":"file_search"}]}]}`}},
	{"GET", "/threads/{t}/messages/{m}", nil},
	{"POST", "/threads/{t}/messages/{m}", []string{`{"metadata":{"k":"v"}}`}},
	{"DELETE", "/threads/{t}/messages/{m}", nil},
	{"POST", "/threads/runs", []string{`{"assistant_id":"{a}","thread":{"messages":[{"role":"user","content":"hi"}]}}`}},
	{"GET", "/threads/{t}/runs", nil},
	{"POST", "/threads/{t}/runs", []string{`{"assistant_id":"{a}"}`, `{"assistant_id":"{a}","stream":true}`}},
	{"GET", "/threads/{t}/runs/{r}", nil},
	{"POST", "/threads/{t}/runs/{r}", []string{`{"metadata":{"k":"v"}}`}},
	{"POST", "/threads/{t}/runs/{r}/cancel", nil},
	{"GET", "/threads/{t}/runs/{r}/steps", nil},
	{"GET", "/threads/{t}/runs/{r}/steps/{s}", nil},
	{"POST", "/threads/{t}/runs/{r}/submit_tool_outputs", []string{`{"tool_outputs":[{"tool_call_id":"call_x","output":"42"}]}`}},
	{"GET", "/files", nil},
	{"POST", "/files", []string{"multipart"}},
	{"GET", "/files/{f}", nil},
	{"DELETE", "/files/{f}", nil},
	{"GET", "/files/{f}/content", nil},
	{"GET", "/vector_stores", nil},
	{"POST", "/vector_stores", []string{`{}`, `{"name":"n","file_ids":["{f}"],"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":200,"chunk_overlap_tokens":50}}}`}},
	{"GET", "/vector_stores/{vs}", nil},
	{"POST", "/vector_stores/{vs}", []string{`{"name":"n","expires_after":{"anchor":"last_active_at","days":3}}`}},
	{"DELETE", "/vector_stores/{vs}", nil},
	{"POST", "/vector_stores/{vs}/file_batches", []string{`{"file_ids":["{f}"]}`, `{"files":[{"file_id":"{f}","attributes":{"k":1}}]}`}},
	{"GET", "/vector_stores/{vs}/file_batches/{b}", nil},
	{"POST", "/vector_stores/{vs}/file_batches/{b}/cancel", nil},
	{"GET", "/vector_stores/{vs}/file_batches/{b}/files", nil},
	{"GET", "/vector_stores/{vs}/files", nil},
	{"POST", "/vector_stores/{vs}/files", []string{`{"file_id":"{f}"}`, `{"file_id":"{f}","attributes":{"a":"b","n":2,"t":true}}`}},
	{"GET", "/vector_stores/{vs}/files/{f}", nil},
	{"POST", "/vector_stores/{vs}/files/{f}", []string{`{"attributes":{"a":"b"}}`, `{"attributes":null}`}},
	{"DELETE", "/vector_stores/{vs}/files/{f}", nil},
	{"GET", "/vector_stores/{vs}/files/{f}/content", nil},
	{"POST", "/vector_stores/{vs}/search", []string{`{"query":"penguins"}`, `{"query":["a","b"],"filters":{"type":"and","filters":[{"type":"eq","key":"a","value":"b"},{"type":"in","key":"n","value":[1,2]}]},"max_num_results":3,"ranking_options":{"score_threshold":0.1}}`}},
}

var placeholders = []string{"{a}", "{t}", "{m}", "{r}", "{s}", "{f}", "{vs}", "{b}"}

// fuzzFixture is a server with one object of each kind, whose ids fill the
// placeholders the fuzzer does not replace.
type fuzzFixture struct {
	srv *server.Server
	ids map[string]string
}

func newFuzzFixture(t testing.TB) *fuzzFixture {
	srv := server.New(server.WithStepDelay(0), server.WithMaxFileBytes(1<<16))
	t.Cleanup(func() { _ = srv.Close() })
	fx := &fuzzFixture{srv: srv, ids: map[string]string{}}
	post := func(path, body string) map[string]any {
		rec := fx.do(http.MethodPost, path, "application/json", []byte(body))
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("fixture %s: %d %s", path, rec.Code, rec.Body)
		}
		return m
	}
	ct, b := fuzzUpload("penguins live on ice")
	rec := fx.do(http.MethodPost, "/v1/files", ct, b)
	var f map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &f); err != nil || rec.Code != 200 {
		t.Fatalf("fixture upload: %d %s", rec.Code, rec.Body)
	}
	fx.ids["{f}"] = f["id"].(string)
	fx.ids["{a}"] = post("/v1/assistants", `{"model":"m"}`)["id"].(string)
	fx.ids["{t}"] = post("/v1/threads", `{}`)["id"].(string)
	fx.ids["{m}"] = post("/v1/threads/"+fx.ids["{t}"]+"/messages", `{"role":"user","content":"hi"}`)["id"].(string)
	fx.ids["{vs}"] = post("/v1/vector_stores", `{"file_ids":["`+fx.ids["{f}"]+`"]}`)["id"].(string)
	fx.ids["{b}"] = post("/v1/vector_stores/"+fx.ids["{vs}"]+"/file_batches", `{"file_ids":["`+fx.ids["{f}"]+`"]}`)["id"].(string)
	fx.ids["{r}"] = "run_unknown"
	fx.ids["{s}"] = "step_unknown"
	return fx
}

func fuzzUpload(text string) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("purpose", "assistants")
	fw, _ := mw.CreateFormFile("file", "f.txt")
	_, _ = fw.Write([]byte(text))
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func (fx *fuzzFixture) fill(s string) string {
	for _, p := range placeholders {
		s = strings.ReplaceAll(s, p, fx.ids[p])
	}
	return s
}

func (fx *fuzzFixture) do(method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://server.test", bytes.NewReader(body))
	req.URL.Path = path
	req.URL.RawPath = ""
	req.RequestURI = ""
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	fx.srv.ServeHTTP(rec, req)
	return rec
}

// FuzzServerRequests sends random JSON bodies and random path ids to every
// route. The server must never answer 500 (a panic in a handler also shows
// as a 500) nor crash.
func FuzzServerRequests(f *testing.F) {
	for i, r := range fuzzRoutes {
		seeds := r.seeds
		if len(seeds) == 0 {
			seeds = []string{""}
		}
		for _, s := range seeds {
			f.Add(uint8(i), uint8(0), "", s)
		}
		f.Add(uint8(i), uint8(1), "../x", `{}`)
		f.Add(uint8(i), uint8(2), "\x00", `null`)
	}
	f.Add(uint8(1), uint8(0), "", `{"model":"m","metadata":{"k":"`+strings.Repeat("v", 600)+`"}}`)
	f.Add(uint8(10), uint8(0), "", `{"role":"user","content":[]}`)
	f.Add(uint8(43), uint8(0), "", `{"query":"x","filters":{"type":"gt","key":"a","value":[1]}}`)
	fx := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, route, which uint8, id, body string) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := r.path
		if id != "" {
			// Replace one placeholder of the path with the fuzzed id.
			var present []string
			for _, p := range placeholders {
				if strings.Contains(path, p) {
					present = append(present, p)
				}
			}
			if len(present) > 0 {
				p := present[int(which)%len(present)]
				path = strings.Replace(path, p, url.PathEscape(id), 1)
			}
		}
		path = "/v1" + fx.fill(path)
		ct := "application/json"
		data := []byte(fx.fill(body))
		if body == "multipart" {
			ct, data = fuzzUpload(id)
		}
		u, err := url.Parse("http://server.test" + path)
		if err != nil {
			return // not a URL a client could send
		}
		req := httptest.NewRequest(r.method, "http://server.test/", bytes.NewReader(data))
		req.URL = u
		req.RequestURI = u.RequestURI()
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		fx.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", r.method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("%s %s: %d answer not in the API's error shape: %s", r.method, path, rec.Code, rec.Body)
			}
		}
	})
}
