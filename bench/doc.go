// Package bench measures this module's client against the official
// github.com/openai/openai-go/v3 SDK, github.com/sashabaranov/go-openai and a
// floor of bare net/http + encoding/json, side by side in one run.
//
// It is a separate module so that the peers never enter the main module's
// go.mod. Every benchmark talks to one loopback httptest server, started in a
// child process so that its allocations do not count against the clients,
// which serves the same bytes to every SDK. Run it with
//
//	make bench-peers   # -count=10, writes docs/benchmarks.md
//	make bench-short   # one iteration of each, to keep it building
//
// See docs/benchmarks.md for the results and what each benchmark does.
package bench
