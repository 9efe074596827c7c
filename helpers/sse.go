package helpers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// DefaultSSEMaxLineSize is the default maximum length, in bytes, of one line
// of a Server-Sent Events stream (1 MiB), not counting its line terminator.
const DefaultSSEMaxLineSize = 1 << 20

// ErrSSELineTooLong is reported (wrapped in an *SSELimitError) by
// SSEDecoder.Err when a line of the stream is longer than the decoder's
// maximum line size.
var ErrSSELineTooLong = errors.New("sse: line too long")

// ErrSSEEventTooLarge is reported (wrapped in an *SSELimitError) by
// SSEDecoder.Err when the data of one event is larger than the decoder's
// maximum event size.
var ErrSSEEventTooLarge = errors.New("sse: event data too large")

// SSELimitError is the error reported when the stream exceeds one of the
// decoder's size limits. Err is ErrSSELineTooLong or ErrSSEEventTooLarge, so
// errors.Is(err, ErrSSELineTooLong) works on it.
type SSELimitError struct {
	// Err is ErrSSELineTooLong or ErrSSEEventTooLarge.
	Err error
	// Limit is the limit that was exceeded, in bytes.
	Limit int
}

// Error names the exceeded limit, for example
// "sse: line too long (limit 1048576 bytes)".
func (e *SSELimitError) Error() string {
	return e.Err.Error() + " (limit " + strconv.Itoa(e.Limit) + " bytes)"
}

// Unwrap returns e.Err.
func (e *SSELimitError) Unwrap() error { return e.Err }

// SSEEvent is one event decoded from a Server-Sent Events stream.
type SSEEvent struct {
	// Event is the value of the event's last "event:" field, or "" when the
	// event had none (a browser EventSource would call such an event
	// "message"). OpenAI's streams name every event, for example
	// "thread.message.delta" or "done".
	Event string
	// Data is the event's data: the values of its "data:" fields joined with
	// "\n". It is not interpreted (OpenAI's final "[DONE]" is returned as is).
	// Data aliases a buffer owned by the SSEDecoder and is valid only until
	// the next call to Next; copy it to keep it longer.
	Data []byte
}

// SSEOption configures an SSEDecoder; see NewSSEDecoder.
type SSEOption func(*sseConfig)

type sseConfig struct {
	maxLine  int
	maxEvent int
}

// WithSSEMaxLineSize sets the maximum length in bytes of one line of the
// stream, not counting its line terminator. A longer line stops decoding with
// an *SSELimitError wrapping ErrSSELineTooLong. The decoder's read buffer
// never grows beyond this limit plus one byte. Values <= 0 select the
// default, DefaultSSEMaxLineSize (1 MiB).
func WithSSEMaxLineSize(n int) SSEOption {
	return func(c *sseConfig) { c.maxLine = n }
}

// WithSSEMaxEventSize sets the maximum size in bytes of one event's data
// (the joined "data:" values, including the "\n" separators). A larger event
// stops decoding with an *SSELimitError wrapping ErrSSEEventTooLarge. Values
// <= 0 select the default, which is the maximum line size (1 MiB unless
// changed with WithSSEMaxLineSize).
func WithSSEMaxEventSize(n int) SSEOption {
	return func(c *sseConfig) { c.maxEvent = n }
}

const (
	sseInitialBufSize = 4 << 10
	sseMinBufSize     = 16
	sseMaxEmptyReads  = 100
	sseMaxInterned    = 256
	sseMaxInternLen   = 128
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// SSEDecoder reads events from a text/event-stream body following the
// WHATWG HTML "event stream interpretation" rules:
//
//   - lines end with CR, LF or CRLF (a CRLF split across two reads is one
//     line ending); a UTF-8 byte order mark at the start of the stream is
//     skipped;
//   - "event:" sets the event's name and "data:" appends a data line (one
//     space after the colon is removed; several data lines are joined with
//     "\n"); a line without a colon is a field with an empty value;
//   - lines starting with ":" are comments; "id:", "retry:" and unknown
//     fields are ignored;
//   - a blank line dispatches the event if it has at least one data line,
//     and otherwise just forgets the event name.
//
// Unlike the WHATWG rules, an event that is still pending when the stream
// ends with io.EOF is dispatched if it has data (OpenAI's streams do not
// always end with a blank line); a pending event without data is dropped.
// If the reader fails with any other error, the pending event is dropped and
// Err returns the error, wrapped. Decoding stops for good at the first error.
// Bytes are passed through as they are, without UTF-8 validation.
//
// Memory is bounded: the read buffer grows up to the maximum line size (plus
// one byte) and the event buffer up to the maximum event size; see
// WithSSEMaxLineSize and WithSSEMaxEventSize. Buffers are reused between
// events, so decoding allocates nothing per event in the steady state.
//
// Use it like bufio.Scanner:
//
//	dec := NewSSEDecoder(resp.Body)
//	for dec.Next() {
//		ev := dec.Event()
//		// use ev.Event and ev.Data (valid until the next call to Next)
//	}
//	if err := dec.Err(); err != nil {
//		// read error or limit exceeded
//	}
//
// An SSEDecoder is not safe for concurrent use.
type SSEDecoder struct {
	rd       io.Reader
	maxLine  int
	maxEvent int

	buf     []byte // read buffer; unread bytes are buf[r:w]
	r, w    int
	scanned int // bytes of buf[r:w] already known to hold no CR or LF

	eof     bool  // the reader returned io.EOF
	rerr    error // pending non-EOF read error, reported after buf is drained
	skipLF  bool  // the previous line ended with a CR at the end of the buffer
	bomDone bool  // the BOM check at the start of the stream is over

	name    []byte // event name buffer
	data    []byte // data buffer
	hasData bool   // at least one data line was seen for the pending event

	names    map[string]string // interned event names
	lastName string            // name of the previous named event
	ev       SSEEvent
	err      error
	done     bool
}

// NewSSEDecoder returns a decoder reading the stream from r. By default the
// maximum line size is DefaultSSEMaxLineSize (1 MiB) and the maximum event
// data size equals the maximum line size; see WithSSEMaxLineSize and
// WithSSEMaxEventSize. The decoder does its own buffering, so r need not be
// buffered.
func NewSSEDecoder(r io.Reader, opts ...SSEOption) *SSEDecoder {
	var c sseConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.maxLine <= 0 {
		c.maxLine = DefaultSSEMaxLineSize
	}
	if c.maxEvent <= 0 {
		c.maxEvent = c.maxLine
	}
	size := sseInitialBufSize
	if lim := sseBufLimit(c.maxLine); size > lim {
		size = lim
	}
	return &SSEDecoder{
		rd:       r,
		maxLine:  c.maxLine,
		maxEvent: c.maxEvent,
		buf:      make([]byte, size),
	}
}

// sseBufLimit is the largest read buffer needed for lines of at most maxLine
// bytes: the line plus one byte to see either its terminator or that it is
// too long (and at least room for a byte order mark).
func sseBufLimit(maxLine int) int {
	switch {
	case maxLine < sseMinBufSize:
		return sseMinBufSize
	case maxLine == math.MaxInt:
		return maxLine
	}
	return maxLine + 1
}

// Next advances to the next event, which is then available from Event. It
// returns false at the end of the stream or on an error; Err tells which.
// Calling Next invalidates the Data of the previous event.
func (d *SSEDecoder) Next() bool {
	if d.done {
		return false
	}
	d.ev = SSEEvent{}
	d.name = d.name[:0]
	d.data = d.data[:0]
	d.hasData = false
	for {
		line, ok := d.readLine()
		if !ok {
			d.done = true
			if d.err == nil && d.hasData {
				d.dispatch()
				return true
			}
			return false
		}
		if len(line) == 0 {
			if d.hasData {
				d.dispatch()
				return true
			}
			d.name = d.name[:0]
			continue
		}
		if !d.processLine(line) {
			d.done = true
			return false
		}
	}
}

// Event returns the event found by the last successful call to Next. Its
// Data is valid only until the next call to Next.
func (d *SSEDecoder) Event() SSEEvent { return d.ev }

// Err returns the error that ended decoding, or nil if the stream ended
// normally with io.EOF. Read errors are wrapped (use errors.Is or errors.As);
// exceeded limits are reported as *SSELimitError.
func (d *SSEDecoder) Err() error { return d.err }

// dispatch publishes the pending event in d.ev.
func (d *SSEDecoder) dispatch() {
	d.ev = SSEEvent{Event: d.internName(), Data: d.data}
}

// internName returns the pending event name as a string, reusing the string
// of an earlier event with the same name so that the common case does not
// allocate.
func (d *SSEDecoder) internName() string {
	if len(d.name) == 0 {
		return ""
	}
	if string(d.name) == d.lastName { // the common case: same as the previous event
		return d.lastName
	}
	if s, ok := d.names[string(d.name)]; ok { // no allocation for the lookup
		d.lastName = s
		return s
	}
	s := string(d.name)
	if len(s) <= sseMaxInternLen && len(d.names) < sseMaxInterned {
		if d.names == nil {
			d.names = make(map[string]string)
		}
		d.names[s] = s
	}
	d.lastName = s
	return s
}

// processLine applies one non-blank line to the pending event. It returns
// false if a limit was exceeded (d.err is then set).
func (d *SSEDecoder) processLine(line []byte) bool {
	if line[0] == ':' {
		return true // comment
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "data":
		n := len(d.data) + len(value)
		if d.hasData {
			n++
		}
		if n > d.maxEvent {
			d.err = &SSELimitError{Err: ErrSSEEventTooLarge, Limit: d.maxEvent}
			return false
		}
		if d.hasData {
			d.data = append(d.data, '\n')
		}
		d.data = append(d.data, value...)
		d.hasData = true
	case "event":
		d.name = append(d.name[:0], value...)
	}
	// "id", "retry" and unknown fields are ignored.
	return true
}

// readLine returns the next line without its terminator. The line aliases
// the read buffer and is valid until the next call. It returns false at the
// end of the stream or on an error (d.err is then set, except at io.EOF).
func (d *SSEDecoder) readLine() ([]byte, bool) {
	for {
		if d.skipLF && d.r < d.w {
			d.skipLF = false
			if d.buf[d.r] == '\n' {
				d.r++
			}
		}
		ready := d.r < d.w
		if ready && !d.bomDone {
			ready = d.checkBOM()
		}
		if ready {
			base := d.r + d.scanned
			rest := d.buf[base:d.w]
			i := bytes.IndexByte(rest, '\n')
			head := rest
			if i >= 0 {
				head = rest[:i]
			}
			if j := bytes.IndexByte(head, '\r'); j >= 0 {
				i = j
			}
			if i >= 0 {
				end := base + i
				line := d.buf[d.r:end]
				if len(line) > d.maxLine {
					d.err = &SSELimitError{Err: ErrSSELineTooLong, Limit: d.maxLine}
					return nil, false
				}
				next := end + 1
				if d.buf[end] == '\r' {
					if next < d.w {
						if d.buf[next] == '\n' {
							next++
						}
					} else {
						d.skipLF = true // the LF, if any, is in the next read
					}
				}
				d.r, d.scanned = next, 0
				return line, true
			}
			d.scanned = d.w - d.r
			if d.scanned > d.maxLine {
				d.err = &SSELimitError{Err: ErrSSELineTooLong, Limit: d.maxLine}
				return nil, false
			}
		}
		// More bytes are needed.
		if d.eof {
			if !d.bomDone {
				d.bomDone = true // the stream is shorter than a BOM
				continue
			}
			if d.r < d.w { // the last line, without terminator
				line := d.buf[d.r:d.w]
				d.r, d.scanned = d.w, 0
				return line, true
			}
			return nil, false
		}
		if d.rerr != nil {
			d.err = fmt.Errorf("sse: reading stream: %w", d.rerr)
			return nil, false
		}
		d.fill()
	}
}

// checkBOM removes a UTF-8 byte order mark at the start of the stream. It
// returns false if more bytes are needed to decide.
func (d *SSEDecoder) checkBOM() bool {
	avail := d.buf[d.r:d.w]
	if len(avail) >= len(utf8BOM) {
		if bytes.HasPrefix(avail, utf8BOM) {
			d.r += len(utf8BOM)
		}
		d.bomDone = true
		return true
	}
	if !bytes.HasPrefix(utf8BOM, avail) {
		d.bomDone = true
		return true
	}
	return false
}

// fill reads more bytes into the buffer, compacting or growing it when the
// unread bytes reach its end. It records io.EOF in d.eof and any other error
// in d.rerr.
func (d *SSEDecoder) fill() {
	if d.w == len(d.buf) {
		if d.r > 0 {
			d.w = copy(d.buf, d.buf[d.r:d.w])
			d.r = 0
		} else {
			// The buffer holds one partial line; readLine reports lines
			// longer than maxLine before the buffer reaches this limit.
			size := 2 * len(d.buf)
			if lim := sseBufLimit(d.maxLine); size > lim {
				size = lim
			}
			nb := make([]byte, size)
			d.w = copy(nb, d.buf[d.r:d.w])
			d.buf = nb
		}
	}
	for range sseMaxEmptyReads {
		n, err := d.rd.Read(d.buf[d.w:])
		if n < 0 || n > len(d.buf)-d.w {
			d.rerr = errors.New("sse: invalid Read count")
			return
		}
		d.w += n
		if err != nil {
			if err == io.EOF {
				d.eof = true
			} else {
				d.rerr = err
			}
			return
		}
		if n > 0 {
			return
		}
	}
	d.rerr = io.ErrNoProgress
}

// atEOF reports whether the whole stream has been consumed: the reader
// returned io.EOF and no unread byte is left. Stream uses it to tell a
// stream cut in the middle of its last event from a bad event.
func (d *SSEDecoder) atEOF() bool { return d.eof && d.r >= d.w }
