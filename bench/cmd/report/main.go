// Command report turns the output of the peer benchmarks (go test -bench
// -v, run several times) into docs/benchmarks.md: the machine, the command
// to reproduce, a summary of medians and ratios of ours to each peer and to
// the floor, the targets with their status, and benchstat's tables.
//
//	go run ./cmd/report -raw results/peers.raw.txt -clean results/peers.txt -out ../docs/benchmarks.md
//
// It runs benchstat (pinned in this module's go.mod by tools.go) with
// "go run golang.org/x/perf/cmd/benchstat", so it needs only the module
// proxy. It must run from the bench module's directory.
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"text/template"
	"time"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

//go:embed benchmarks.md.tmpl
var docTemplate string

// SDK names, in column order.
var sdks = []string{"ours", "openai-go", "go-openai", "floor"}

func main() {
	raw := flag.String("raw", "results/peers.raw.txt", "output of the benchmark runs (go test -bench -v)")
	clean := flag.String("clean", "results/peers.txt", "where to write the results alone, for benchstat")
	out := flag.String("out", "../docs/benchmarks.md", "the document to write")
	command := flag.String("command", "make bench-peers", "the command that produced the results, for the document")
	load := flag.String("load", "", "optional file of the 1-minute load average at the start of each run, one a line")
	flag.Parse()
	if err := run(*raw, *clean, *out, *command, *load); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(rawPath, cleanPath, outPath, command, loadPath string) error {
	raw, err := os.ReadFile(rawPath)
	if err != nil {
		return err
	}
	cleaned, skips := clean(raw)
	if err := os.WriteFile(cleanPath, cleaned, 0o644); err != nil {
		return err
	}
	set, err := parse(cleaned, cleanPath)
	if err != nil {
		return err
	}
	peers, err := benchstat("-col", "/sdk", "-filter", "-.name:(StreamDecode OR BuildRequest OR ListDecode OR CreateMessageAttempt)", cleanPath)
	if err != nil {
		return err
	}
	build, err := benchstat("-col", "/part", "-row", "/op", "-filter", ".name:BuildRequest", cleanPath)
	if err != nil {
		return err
	}
	decode, err := benchstat("-col", "/part", "-filter", ".name:StreamDecode", cleanPath)
	if err != nil {
		return err
	}
	list, err := benchstat("-col", "/part", "-filter", ".name:ListDecode", cleanPath)
	if err != nil {
		return err
	}
	attempt, err := benchstat("-col", "/part", "-filter", ".name:CreateMessageAttempt", cleanPath)
	if err != nil {
		return err
	}
	kept, err := keptPart(outPath)
	if err != nil {
		return err
	}
	fp, err := measureFootprint()
	if err != nil {
		return err
	}
	d := doc{
		Date:     time.Now().UTC().Format("2006-01-02"),
		Command:  command,
		Machine:  append(machine(set), loadLine(loadPath)...),
		Runs:     set.runs,
		Skips:    skips,
		Peers:    strings.TrimSpace(peers),
		Decode:   strings.TrimSpace(decode),
		List:     strings.TrimSpace(list),
		Attempt:  strings.TrimSpace(attempt),
		Foot:     fp,
		Build:    strings.TrimSpace(build),
		Builders: set.builders(),
		Tables:   set.summaryTables(),
		Targets:  set.targets(),
		Stream:   set.streamParts(),
		PageHeap: set.pageHeap(),
		Kept:     kept,
	}
	var b bytes.Buffer
	t := template.Must(template.New("doc").Parse(docTemplate))
	if err := t.Execute(&b, d); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	return os.WriteFile(outPath, b.Bytes(), 0o644)
}

// --- input -------------------------------------------------------------------

var (
	skipLine   = regexp.MustCompile(`^\s*--- SKIP: (Benchmark\S+)`)
	reasonLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
	bareName   = regexp.MustCompile(`^Benchmark\S+\s*$`)
)

// clean keeps the configuration and result lines of raw (dropping what -v
// adds) and collects the reasons of skipped benchmarks.
func clean(raw []byte) ([]byte, map[string]string) {
	var out bytes.Buffer
	skips := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	reason := "" // the last log line; for a benchmark it comes before "--- SKIP"
	for sc.Scan() {
		line := sc.Text()
		if m := skipLine.FindStringSubmatch(line); m != nil {
			skips[stripProcs(strings.TrimPrefix(m[1], "Benchmark"))] = reason
			continue
		}
		if m := reasonLine.FindStringSubmatch(line); m != nil {
			reason = m[1]
			continue
		}
		switch {
		case bareName.MatchString(line), strings.HasPrefix(line, "==="), strings.HasPrefix(line, "---"),
			strings.HasPrefix(line, "    "), line == "PASS", strings.HasPrefix(line, "ok "):
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes(), skips
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

func stripProcs(name string) string { return procsSuffix.ReplaceAllString(name, "") }

// key names one measured series: a benchmark (with its non-sdk name parts,
// e.g. "PageAll/items=1000"), an SDK (or a part) and a unit.
type key struct{ bench, sdk, unit string }

type resultSet struct {
	values map[key][]float64
	config map[string]string
	runs   int
	order  []string // benchmarks in order of appearance
}

func parse(data []byte, name string) (*resultSet, error) {
	s := &resultSet{values: map[key][]float64{}, config: map[string]string{}}
	r := benchfmt.NewReader(bytes.NewReader(data), name)
	seen := map[string]bool{}
	first := ""
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		for _, c := range res.Config {
			if c.File {
				s.config[c.Key] = string(c.Value)
			}
		}
		full := stripProcs(string(res.Name.Full()))
		var bench []string
		sdk := ""
		for i, part := range strings.Split(full, "/") {
			k, v, isKV := strings.Cut(part, "=")
			switch {
			case i > 0 && isKV && (k == "sdk" || k == "part"):
				sdk = v
			default:
				bench = append(bench, part)
			}
		}
		b := strings.Join(bench, "/")
		if first == "" {
			first = full
		}
		if full == first {
			s.runs++
		}
		if !seen[b] {
			seen[b] = true
			s.order = append(s.order, b)
		}
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, val = v.OrigUnit, v.OrigValue
			}
			k := key{b, sdk, unit}
			s.values[k] = append(s.values[k], val)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(s.values) == 0 {
		return nil, errors.New("no benchmark results in " + name)
	}
	return s, nil
}

func (s *resultSet) sample(bench, sdk, unit string) *benchmath.Sample {
	v := s.values[key{bench, sdk, unit}]
	if len(v) == 0 {
		return nil
	}
	return benchmath.NewSample(slices.Clone(v), &benchmath.DefaultThresholds)
}

func (s *resultSet) median(bench, sdk, unit string) (float64, bool) {
	smp := s.sample(bench, sdk, unit)
	if smp == nil {
		return 0, false
	}
	return benchmath.AssumeNothing.Summary(smp, 0.95).Center, true
}

// pValue is the Mann-Whitney U test's p-value for the two series.
func (s *resultSet) pValue(bench, a, b, unit string) float64 {
	x, y := s.sample(bench, a, unit), s.sample(bench, b, unit)
	if x == nil || y == nil {
		return math.NaN()
	}
	return benchmath.AssumeNothing.Compare(x, y).P
}

// --- document ----------------------------------------------------------------

type doc struct {
	Date, Command string
	Machine       []string
	Runs          int
	Skips         map[string]string
	Peers, Decode string
	List          string // benchstat of ListDecode
	Attempt       string // benchstat of CreateMessageAttempt
	Build         string
	Foot          *footprint
	Builders      []builder
	Tables        []table
	Targets       []target
	Stream        *streamParts
	PageHeap      []string
	Kept          string // the server's sections, from the document rewritten (kept.go)
}

type table struct {
	Title  string
	Header []string
	Rows   [][]string
}

type target struct {
	Benchmark, Goal, Measured, Status string
}

func machine(s *resultSet) []string {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	goVersion := s.config["go"]
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	out := []string{
		"CPU: " + model + fmt.Sprintf(" (%d logical cores)", runtime.NumCPU()),
		"OS: " + s.config["goos"] + "/" + s.config["goarch"] + kernel(),
		"Go: " + goVersion,
	}
	return out
}

// loadLine describes the load averages recorded in path (one a line, as
// make bench-peers writes them): none when path is empty or unreadable.
func loadLine(path string) []string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	loads := strings.Fields(string(b))
	if len(loads) == 0 {
		return nil
	}
	return []string{"Load average (1 minute) at the start of each run, from the other work on this 2-core VM: " + strings.Join(loads, ", ")}
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return ", Linux " + strings.TrimSpace(string(b))
}

// metrics shown in the summary tables: unit, title, formatter.
var metrics = []struct {
	unit, title string
	format      func(float64) string
	higher      bool // higher is better
}{
	{"ns/op", "Wall time per operation (median; lower is better)", fmtNs, false},
	{"cpu-ns/op", "Client CPU time per operation (median; lower is better)", fmtNs, false},
	{"allocs/op", "Allocations per operation (median; lower is better)", fmtCount, false},
	{"B/op", "Bytes allocated per operation (median; lower is better)", fmtBytes, false},
	{"MB/s", "Stream throughput (median; higher is better)", func(v float64) string { return fmt.Sprintf("%.1f MB/s", v) }, true},
}

func (s *resultSet) summaryTables() []table {
	var out []table
	for _, m := range metrics {
		t := table{Title: m.title, Header: []string{"benchmark", "ours", "openai-go", "go-openai", "floor",
			"ours ÷ openai-go", "ours ÷ go-openai", "ours ÷ floor"}}
		for _, b := range s.order {
			if b == "StreamDecode" || b == "ListDecode" || strings.HasPrefix(b, "BuildRequest") {
				continue
			}
			row := []string{b}
			any := false
			vals := map[string]float64{}
			for _, sdk := range sdks {
				if v, ok := s.median(b, sdk, m.unit); ok {
					vals[sdk] = v
					row = append(row, m.format(v))
					any = true
				} else {
					row = append(row, "—")
				}
			}
			if !any {
				continue
			}
			for _, peer := range sdks[1:] {
				ours, ok1 := vals["ours"]
				other, ok2 := vals[peer]
				if !ok1 || !ok2 || other == 0 {
					row = append(row, "—")
					continue
				}
				row = append(row, fmt.Sprintf("%.2f×", ours/other))
			}
			t.Rows = append(t.Rows, row)
		}
		if len(t.Rows) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// verdict compares ours with limit×other on unit (lower is better unless
// higher): ✓ when ours is at or better than the limit, ≈ when a time is
// worse by a difference that is not significant (Mann-Whitney U, α = 0.05,
// only for limit 1), ✗ otherwise. Allocation counts are exact, so they get
// no ≈.
func (s *resultSet) verdict(bench, other, unit string, limit float64, higher bool) (string, float64, float64) {
	ours, ok1 := s.median(bench, "ours", unit)
	them, ok2 := s.median(bench, other, unit)
	if !ok1 || !ok2 {
		return "no data", ours, them
	}
	good := ours <= limit*them
	if higher {
		good = ours >= limit*them
	}
	switch {
	case good:
		return "✓ met", ours, them
	case limit == 1 && strings.HasSuffix(unit, "ns/op") && s.pValue(bench, "ours", other, unit) >= 0.05:
		return fmt.Sprintf("≈ within noise (p=%.2f)", s.pValue(bench, "ours", other, unit)), ours, them
	default:
		return "✗ missed", ours, them
	}
}

func (s *resultSet) targets() []target {
	var out []target
	for _, b := range []string{"RetrieveRun", "ListMessages", "CreateMessage"} {
		// The faster peer, by median wall time.
		peer := "go-openai"
		if a, ok1 := s.median(b, "openai-go", "ns/op"); ok1 {
			if g, ok2 := s.median(b, "go-openai", "ns/op"); !ok2 || a < g {
				peer = "openai-go"
			}
		}
		st, o, p := s.verdict(b, peer, "ns/op", 1, false)
		out = append(out, target{b, "ns/op ≤ the faster peer (" + peer + ")",
			fmt.Sprintf("%s vs %s (%.2f×)", fmtNs(o), fmtNs(p), o/p), st})
		st, o, p = s.verdict(b, peer, "cpu-ns/op", 1, false)
		out = append(out, target{b, "client CPU/op ≤ " + peer + " (supplementary)",
			fmt.Sprintf("%s vs %s (%.2f×)", fmtNs(o), fmtNs(p), o/p), st})
		st, o, p = s.verdict(b, peer, "allocs/op", 1, false)
		out = append(out, target{b, "allocs/op ≤ " + peer,
			fmt.Sprintf("%s vs %s (%.2f×)", fmtCount(o), fmtCount(p), o/p), st})
		st, o, p = s.verdict(b, "floor", "ns/op", 1.3, false)
		out = append(out, target{b, "ns/op ≤ 1.3 × floor",
			fmt.Sprintf("%s vs %s (%.2f×)", fmtNs(o), fmtNs(p), o/p), st})
	}
	st, o, p := s.verdict("StreamRun", "openai-go", "MB/s", 1.5, true)
	out = append(out, target{"StreamRun", "MB/s ≥ 1.5 × openai-go",
		fmt.Sprintf("%.1f vs %.1f MB/s (%.2f×)", o, p, o/p), st})
	st, o, p = s.verdict("StreamRun", "floor", "ns/op", 1.5, false)
	out = append(out, target{"StreamRun", "ns/op ≤ 1.5 × floor (split lines + decode JSON)",
		fmt.Sprintf("%s vs %s (%.2f×)", fmtNs(o), fmtNs(p), o/p), st})
	small, ok1 := s.median("PageAll/items=1000", "ours", "peak-heap-B")
	large, ok2 := s.median("PageAll/items=10000", "ours", "peak-heap-B")
	st = "no data"
	if ok1 && ok2 {
		// Flat: ten times the items may not cost more than half as much
		// heap again (plus 64 KiB of slack for the runtime's own noise).
		st = "✗ missed"
		if large <= 1.5*small+64<<10 {
			st = "✓ met"
		}
	}
	out = append(out, target{"PageAll", "peak heap flat from 1,000 to 10,000 items",
		fmt.Sprintf("%s → %s", fmtBytes(small), fmtBytes(large)), st})
	req, ok := s.median("PollRun", "ours", "requests/op")
	lag, _ := s.median("PollRun", "ours", "lag-ms/op")
	st = "no data"
	if ok {
		st = "✗ missed"
		if req <= 6 {
			st = "✓ met"
		}
	}
	out = append(out, target{"PollRun", "requests ≤ what the hints call for (6), completion seen within one interval (10 ms)",
		fmt.Sprintf("%.1f requests, seen %.1f ms after completion", req, lag), st})
	return out
}

// builder compares a generated request builder with the direct one.
type builder struct {
	Op                                       string
	GenAllocs, DirectAllocs, GenNs, DirectNs string
}

func (s *resultSet) builders() []builder {
	var out []builder
	for _, op := range []string{"GetRun", "CreateMessage"} {
		b := "BuildRequest/op=" + op
		ga, ok1 := s.median(b, "gen", "allocs/op")
		da, ok2 := s.median(b, "direct", "allocs/op")
		gn, ok3 := s.median(b, "gen", "ns/op")
		dn, ok4 := s.median(b, "direct", "ns/op")
		if ok1 && ok2 && ok3 && ok4 {
			out = append(out, builder{op, fmtCount(ga), fmtCount(da), fmtNs(gn), fmtNs(dn)})
		}
	}
	return out
}

type streamParts struct {
	SSE, Events, EventsText, Floor string
	UnionShare                     string // share of events+text spent in the union's second decode
	EventsVsFloor, TextVsFloor     string
}

func (s *resultSet) streamParts() *streamParts {
	get := func(part string) (float64, bool) { return s.median("StreamDecode", part, "ns/op") }
	sse, ok1 := get("sse")
	ev, ok2 := get("events")
	evt, ok3 := get("events+text")
	fl, ok4 := get("floor")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil
	}
	return &streamParts{
		SSE: fmtNs(sse), Events: fmtNs(ev), EventsText: fmtNs(evt), Floor: fmtNs(fl),
		UnionShare:    fmt.Sprintf("%.0f%%", 100*(evt-ev)/evt),
		EventsVsFloor: fmt.Sprintf("%.2f×", ev/fl),
		TextVsFloor:   fmt.Sprintf("%.2f×", evt/fl),
	}
}

func (s *resultSet) pageHeap() []string {
	var out []string
	for _, sdk := range sdks {
		var parts []string
		for _, n := range []string{"1000", "10000"} {
			if peak, ok := s.median("PageAll/items="+n, sdk, "peak-heap-B"); ok {
				parts = append(parts, fmt.Sprintf("%s at %s items", fmtBytes(peak), n))
			}
		}
		if len(parts) > 0 {
			out = append(out, sdk+": "+strings.Join(parts, "; "))
		}
	}
	return out
}

// --- formatting ----------------------------------------------------------------

func fmtNs(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

func fmtCount(v float64) string {
	if v >= 1e6 {
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	if v >= 1e4 {
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// benchstat runs the pinned benchstat with args and returns its output.
func benchstat(args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"run", "golang.org/x/perf/cmd/benchstat"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("benchstat %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// footprint is the size of the two consumer programs (bench/consumer).
type footprint struct {
	Ours, GoOpenAI, OursStripped, GoOpenAIStripped string
	Ratio, RatioStripped                           string
}

// measureFootprint builds consumer/ours and consumer/goopenai with default
// flags and with -ldflags=-s -w, as TestConsumerFootprint does.
func measureFootprint() (*footprint, error) {
	dir, err := os.MkdirTemp("", "footprint")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	size := func(pkg string, flags ...string) (int64, error) {
		out := filepath.Join(dir, filepath.Base(pkg)+strings.Join(flags, ""))
		args := append(append([]string{"build", "-o", out}, flags...), pkg)
		if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, b)
		}
		fi, err := os.Stat(out)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	var sz [4]int64
	for i, c := range []struct {
		pkg   string
		flags []string
	}{
		{"./consumer/ours", nil}, {"./consumer/goopenai", nil},
		{"./consumer/ours", []string{"-ldflags=-s -w"}}, {"./consumer/goopenai", []string{"-ldflags=-s -w"}},
	} {
		if sz[i], err = size(c.pkg, c.flags...); err != nil {
			return nil, err
		}
	}
	mb := func(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }
	return &footprint{
		Ours: mb(sz[0]), GoOpenAI: mb(sz[1]), OursStripped: mb(sz[2]), GoOpenAIStripped: mb(sz[3]),
		Ratio:         fmt.Sprintf("%.2f×", float64(sz[0])/float64(sz[1])),
		RatioStripped: fmt.Sprintf("%.2f×", float64(sz[2])/float64(sz[3])),
	}, nil
}
