package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	goopenai "github.com/sashabaranov/go-openai"
)

// BenchmarkStreamDecode splits StreamRun's client work into layers, on the
// same 10 MB body read from memory (no network, no transports):
//
//	part=sse          helpers.SSEDecoder alone: lines to events
//	part=events       helpers.Stream: typed events (helpers.MessageDelta,
//	                  gen.RunObject...)
//	part=events+text  and the text of each delta's parts, as StreamRun does
//	part=floor        split lines, decode each delta into a partial struct
func BenchmarkStreamDecode(b *testing.B) {
	body := streamBody()
	parts := []struct {
		name string
		run  func() (int, error)
	}{
		{"sse", func() (int, error) {
			d := helpers.NewSSEDecoder(bytes.NewReader(body))
			n := 0
			for d.Next() {
				n++
			}
			return n, d.Err()
		}},
		{"events", func() (int, error) {
			s := helpers.NewStream(context.Background(), io.NopCloser(bytes.NewReader(body)), nil)
			n := 0
			for s.Next() {
				n++
			}
			return n, s.Err()
		}},
		{"events+text", func() (int, error) {
			s := helpers.NewStream(context.Background(), io.NopCloser(bytes.NewReader(body)), nil)
			var text strings.Builder
			for s.Next() {
				if d := s.Event().MessageDelta; d != nil {
					for _, part := range d.Delta.Content {
						text.WriteString(part.Text.Value)
					}
				}
			}
			return text.Len(), s.Err()
		}},
		{"floor", func() (int, error) {
			r := bufio.NewReaderSize(bytes.NewReader(body), 64<<10)
			var (
				text  strings.Builder
				event []byte
				d     floorDelta
			)
			for {
				line, err := r.ReadSlice('\n')
				if err == io.EOF {
					return text.Len(), nil
				}
				if err != nil {
					return 0, err
				}
				line = bytes.TrimSuffix(line, []byte{'\n'})
				switch {
				case bytes.HasPrefix(line, []byte("event: ")):
					event = append(event[:0], line[len("event: "):]...)
				case bytes.HasPrefix(line, []byte("data: ")) && string(event) == "thread.message.delta":
					d.Delta.Content = d.Delta.Content[:0]
					if err := json.Unmarshal(line[len("data: "):], &d); err != nil {
						return 0, err
					}
					for _, p := range d.Delta.Content {
						text.WriteString(p.Text.Value)
					}
				}
			}
		}},
	}
	for _, p := range parts {
		b.Run("part="+p.name, func(b *testing.B) {
			if _, err := p.run(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuildRequest compares the generated request builders with the
// direct way of building the same request (one concatenation, one
// http.NewRequest), for the two calls of RetrieveRun and CreateMessage:
//
//	part=gen     gen.NewGetRunRequest / gen.NewCreateMessageRequest
//	part=direct  http.NewRequest(server + "/threads/" + url.PathEscape(id) + ...)
//
// The body of CreateMessage is marshalled by both.
func BenchmarkBuildRequest(b *testing.B) {
	const server = "http://127.0.0.1:8080/v1"
	const genServer = server + "/" // gen.NewClient adds the slash the builders need
	body := gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Metadata: &gen.Metadata{"channel": "web"}}
	if err := body.Content.FromCreateMessageText(createMessageText); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		op, part string
		build    func() (*http.Request, error)
	}{
		{"GetRun", "gen", func() (*http.Request, error) { return gen.NewGetRunRequest(genServer, benchThread, benchRun) }},
		{"GetRun", "direct", func() (*http.Request, error) {
			return http.NewRequest(http.MethodGet, server+"/threads/"+url.PathEscape(benchThread)+"/runs/"+url.PathEscape(benchRun), nil)
		}},
		{"CreateMessage", "gen", func() (*http.Request, error) { return gen.NewCreateMessageRequest(genServer, benchThread, body) }},
		{"CreateMessage", "direct", func() (*http.Request, error) {
			buf, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			r, err := http.NewRequest(http.MethodPost, server+"/threads/"+url.PathEscape(benchThread)+"/messages", bytes.NewReader(buf))
			if err == nil {
				r.Header.Set("Content-Type", "application/json")
			}
			return r, err
		}},
	}
	for _, c := range cases {
		b.Run("op="+c.op+"/part="+c.part, func(b *testing.B) {
			r, err := c.build()
			if err != nil {
				b.Fatal(err)
			}
			if want := server + "/threads/" + benchThread; !strings.HasPrefix(r.URL.String(), want) {
				b.Fatalf("URL %s does not start with %s", r.URL, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.build(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkListDecode splits ListMessages' client work into layers, on one
// page of 100 messages (about 60 KB) decoded from memory:
//
//	part=decode       json.Unmarshal into gen.ListMessagesResponse: every
//	                  field, content parts and annotations as flat structs
//	part=decode+read  and every text part and annotation read from its
//	                  fields, as ListMessages does
//	part=go-openai    json.Unmarshal into go-openai's MessagesList and the same
//	                  reading
//	part=floor        json.Unmarshal into the floor's partial struct and the
//	                  same reading
func BenchmarkListDecode(b *testing.B) {
	page := pageFixture(benchThread, 0, listPageSize, 1000)
	parts := []struct {
		name string
		run  func() (summary, error)
	}{
		{"decode", func() (summary, error) {
			var l gen.ListMessagesResponse
			err := json.Unmarshal(page, &l)
			return summary{N: len(l.Data)}, err
		}},
		{"decode+read", func() (summary, error) {
			var l gen.ListMessagesResponse
			err := json.Unmarshal(page, &l)
			s := summary{N: len(l.Data)}
			for i := range l.Data {
				s.tallyOurs(&l.Data[i])
			}
			return s, err
		}},
		{"go-openai", func() (summary, error) {
			var l goopenai.MessagesList
			err := json.Unmarshal(page, &l)
			s := summary{N: len(l.Messages)}
			for i := range l.Messages {
				s.tallyGoOpenAI(&l.Messages[i])
			}
			return s, err
		}},
		{"floor", func() (summary, error) {
			var p floorPage
			err := json.Unmarshal(page, &p)
			s := summary{N: len(p.Data)}
			for i := range p.Data {
				s.tallyFloor(&p.Data[i])
			}
			return s, err
		}},
	}
	for _, p := range parts {
		b.Run("part="+p.name, func(b *testing.B) {
			s, err := p.run()
			if err != nil || s.N != listPageSize {
				b.Fatal(err, s.N)
			}
			if p.name != "decode" {
				wantTally(b, s, 0, listPageSize)
			}
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
