package helpers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/assistants-go/assistants/gen"
)

// maxDeltaIndexGap bounds how far past the end of a list a delta's "index"
// may point, so that a bad index cannot make the accumulator allocate a huge
// list.
const maxDeltaIndexGap = 1024

// ToolCallDelta is one fragment of a tool call, as passed to
// Accumulator.OnToolCallDelta. Only the fields present in the fragment are
// set; the accumulated call is in the run step (see Accumulator.RunSteps).
type ToolCallDelta struct {
	// StepID is the ID of the run step the call belongs to.
	StepID string
	// Index is the call's position in the step's tool_calls.
	Index int
	// Type is "function", "code_interpreter" or "file_search"; it is
	// usually present only in a call's first fragment.
	Type string
	// ID is the tool call ID; usually present only in the first fragment.
	ID string
	// Name is the function name (function calls); usually present only in
	// the first fragment.
	Name string
	// Arguments is the next piece of a function call's JSON arguments.
	Arguments string
	// Input is the next piece of a code interpreter call's code.
	Input string
}

// Accumulator builds the current state of a run from its stream events:
// the thread (for createThreadAndRun), the run, the messages and the run
// steps. Feed it every event with Add (or a whole stream with Consume) and
// read the results at any time.
//
// Rules: a snapshot event (thread.created, thread.run.*,
// thread.run.step.* and thread.message.* except the deltas) replaces the
// object with its payload; completed and incomplete events thus give the
// server's final version. A thread.message.delta appends its text to the
// text part at its index and merges annotations by their index; a
// thread.run.step.delta merges tool calls by their index, concatenating
// function arguments, code interpreter input and logs, and replacing other
// fields that are present (ids, names, outputs). A delta for an object not
// seen yet starts it from its ID. Unknown events are passed to OnEvent only.
//
// The hooks, when set, are called synchronously from Add, in this order:
// OnTextDelta or OnToolCallDelta for each fragment of a delta, then OnEvent
// after the event has been applied.
//
// The zero Accumulator is ready to use. It is not safe for concurrent use.
type Accumulator struct {
	// OnEvent, when non-nil, is called with every event after it has been
	// applied. Default: nil.
	OnEvent func(ev StreamEvent)
	// OnTextDelta, when non-nil, is called with each piece of text added to
	// a message's text parts (or refusal), in stream order, so a program can
	// print the answer as it arrives. The pieces of one message, joined,
	// equal MessageText of the accumulated message until a snapshot event
	// replaces it. Default: nil.
	OnTextDelta func(messageID, text string)
	// OnToolCallDelta, when non-nil, is called with each tool call fragment
	// of a thread.run.step.delta event. Default: nil.
	OnToolCallDelta func(d ToolCallDelta)

	thread *gen.ThreadObject
	run    *gen.RunObject

	messages []*msgState
	msgIndex map[string]int

	steps     []*stepState
	stepIndex map[string]int
}

// msgState is a message being accumulated: the last snapshot plus the
// content parts merged since.
type msgState struct {
	obj   gen.MessageObject
	parts []*partState
}

// partState is one content part. Text parts keep their text in a byte
// slice (appends are amortized O(1)) and their annotations as merged JSON
// objects; other parts are merged JSON objects.
type partState struct {
	typ   string
	text  []byte
	anns  []any // map[string]any per annotation, nil for a gap
	other map[string]any
}

// stepState is a run step being accumulated: the last snapshot plus its
// details as a merged JSON object when deltas have changed them.
type stepState struct {
	obj     gen.RunStepObject
	details map[string]any // nil until a delta arrives
}

// Add applies one event. It returns an error only for a delta it cannot
// merge (a content part, annotation or tool call with a missing, negative
// or absurd index, or a part that is not a JSON object); the fragments of
// that event before the bad one stay applied. Snapshot events and unknown
// events never fail.
func (a *Accumulator) Add(ev StreamEvent) error {
	var err error
	switch {
	case ev.MessageDelta != nil:
		err = a.addMessageDelta(ev.MessageDelta)
	case ev.Message != nil:
		a.setMessage(*ev.Message)
	case ev.Run != nil:
		r := *ev.Run
		a.run = &r
	case ev.RunStepDelta != nil:
		err = a.addStepDelta(ev.RunStepDelta)
	case ev.RunStep != nil:
		st := a.step(ev.RunStep.Id)
		st.obj = *ev.RunStep
		st.details = nil
	case ev.Thread != nil:
		t := *ev.Thread
		a.thread = &t
	}
	if err != nil {
		return fmt.Errorf("helpers: accumulate %s: %w", ev.Name, err)
	}
	if a.OnEvent != nil {
		a.OnEvent(ev)
	}
	return nil
}

// Consume reads s to its end, adding every event, and returns the stream's
// error (nil when it ended with "done") or the first error of Add, in which
// case it closes the stream.
func (a *Accumulator) Consume(s *Stream) error {
	for s.Next() {
		if err := a.Add(s.Event()); err != nil {
			_ = s.Close()
			return err
		}
	}
	return s.Err()
}

// Thread returns a copy of the thread of a thread.created event, or nil
// if there was none.
func (a *Accumulator) Thread() *gen.ThreadObject {
	if a.thread == nil {
		return nil
	}
	t := *a.thread
	return &t
}

// Run returns a copy of the run as of the last thread.run.* event, or nil
// if there was none.
func (a *Accumulator) Run() *gen.RunObject {
	if a.run == nil {
		return nil
	}
	r := *a.run
	return &r
}

// Messages returns the accumulated messages in the order they first
// appeared in the stream.
func (a *Accumulator) Messages() []gen.MessageObject {
	out := make([]gen.MessageObject, 0, len(a.messages))
	for _, m := range a.messages {
		out = append(out, m.build())
	}
	return out
}

// Message returns the accumulated message with the given ID, and whether
// it was seen.
func (a *Accumulator) Message(id string) (gen.MessageObject, bool) {
	i, ok := a.msgIndex[id]
	if !ok {
		return gen.MessageObject{}, false
	}
	return a.messages[i].build(), true
}

// RunSteps returns the accumulated run steps in the order they first
// appeared in the stream.
func (a *Accumulator) RunSteps() []gen.RunStepObject {
	out := make([]gen.RunStepObject, 0, len(a.steps))
	for _, s := range a.steps {
		out = append(out, s.build())
	}
	return out
}

// MessageText returns the text of m: the values of its text parts,
// concatenated in order without separator (refusal, image and unknown
// parts are skipped). It returns "" for a message without text.
func MessageText(m gen.MessageObject) string {
	var b strings.Builder
	for _, c := range m.Content {
		if c.Type == gen.MessageContentTypeText {
			b.WriteString(c.Text.Value)
		}
	}
	return b.String()
}

// --- messages ---

func (a *Accumulator) message(id string) *msgState {
	if i, ok := a.msgIndex[id]; ok {
		return a.messages[i]
	}
	if a.msgIndex == nil {
		a.msgIndex = make(map[string]int)
	}
	m := &msgState{obj: gen.MessageObject{Id: id, Object: "thread.message"}}
	a.msgIndex[id] = len(a.messages)
	a.messages = append(a.messages, m)
	return m
}

// setMessage replaces a message's snapshot with obj.
func (a *Accumulator) setMessage(obj gen.MessageObject) {
	m := a.message(obj.Id)
	m.obj = obj
	m.parts = m.parts[:0]
	for _, c := range obj.Content {
		m.parts = append(m.parts, partFromContent(c))
	}
}

// partFromContent turns a snapshot content part into a partState.
func partFromContent(c gen.MessageContent) *partState {
	if c.Type == gen.MessageContentTypeText {
		ps := &partState{typ: "text", text: []byte(c.Text.Value)}
		for _, ann := range c.Text.Annotations {
			raw, err := json.Marshal(ann)
			if err != nil {
				continue
			}
			var m map[string]any
			if json.Unmarshal(raw, &m) == nil {
				ps.anns = append(ps.anns, m)
			}
		}
		return ps
	}
	raw, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return &partState{typ: string(c.Type), other: m}
}

// deltaPart is the shape of one thread.message.delta content part, decoded
// once; text is the fast path.
func (a *Accumulator) addMessageDelta(d *MessageDelta) error {
	m := a.message(d.Id)
	if d.Delta.Role != nil {
		m.obj.Role = gen.MessageObjectRole(*d.Delta.Role)
	}
	for i := range d.Delta.Content {
		dp := &d.Delta.Content[i]
		if dp.Index == nil {
			return fmt.Errorf("message %s: content part without index", d.Id)
		}
		idx := *dp.Index
		if err := checkIndex(idx, len(m.parts)); err != nil {
			return fmt.Errorf("message %s: content %w", d.Id, err)
		}
		for len(m.parts) <= idx {
			m.parts = append(m.parts, nil)
		}
		p := m.parts[idx]
		if p == nil {
			p = &partState{typ: dp.Type}
			if dp.Type != "text" {
				p.other = map[string]any{}
			}
			m.parts[idx] = p
		}
		if dp.Type != "" && p.typ == "" {
			p.typ = dp.Type
		}
		if p.typ == "text" && p.other == nil {
			if v := dp.Text.Value; v != "" {
				p.text = append(p.text, v...)
				if a.OnTextDelta != nil {
					a.OnTextDelta(d.Id, v)
				}
			}
			for _, ann := range dp.Text.Annotations {
				raw, err := json.Marshal(ann)
				if err != nil {
					return fmt.Errorf("message %s: annotation: %w", d.Id, err)
				}
				var am map[string]any
				if err := json.Unmarshal(raw, &am); err != nil {
					return fmt.Errorf("message %s: annotation: %w", d.Id, err)
				}
				list, err := mergeIndexed(p.anns, am)
				if err != nil {
					return fmt.Errorf("message %s: annotation %w", d.Id, err)
				}
				p.anns = list
			}
			continue
		}
		// Other parts (images, refusals) are merged field by field.
		raw, err := json.Marshal(dp)
		if err != nil {
			return fmt.Errorf("message %s: content part: %w", d.Id, err)
		}
		var dm map[string]any
		if err := json.Unmarshal(raw, &dm); err != nil {
			return fmt.Errorf("message %s: content part: %w", d.Id, err)
		}
		delete(dm, "index")
		if p.other == nil {
			p.other = map[string]any{}
		}
		if _, err := mergeValue("", p.other, dm); err != nil {
			return fmt.Errorf("message %s: content part: %w", d.Id, err)
		}
		if r, ok := dm["refusal"].(string); ok && r != "" && a.OnTextDelta != nil {
			a.OnTextDelta(d.Id, r)
		}
	}
	return nil
}

// build returns the message with its merged content.
func (m *msgState) build() gen.MessageObject {
	obj := m.obj
	content := make([]gen.MessageContent, 0, len(m.parts))
	for _, p := range m.parts {
		if p == nil {
			continue
		}
		var c gen.MessageContent
		if p.other == nil {
			t := gen.MessageContentText{Value: string(p.text)}
			t.Annotations = make([]gen.MessageContentTextAnnotation, 0, len(p.anns))
			for _, am := range p.anns {
				if am == nil {
					continue
				}
				raw, err := json.Marshal(cleanJSON(am))
				if err != nil {
					continue
				}
				var ann gen.MessageContentTextAnnotation
				if json.Unmarshal(raw, &ann) == nil {
					t.Annotations = append(t.Annotations, ann)
				}
			}
			c = gen.MessageContent{Type: gen.MessageContentTypeText, Text: t}
		} else {
			raw, err := json.Marshal(cleanJSON(p.other))
			if err != nil || json.Unmarshal(raw, &c) != nil {
				continue
			}
		}
		content = append(content, c)
	}
	obj.Content = content
	return obj
}

// --- run steps ---

func (a *Accumulator) step(id string) *stepState {
	if i, ok := a.stepIndex[id]; ok {
		return a.steps[i]
	}
	if a.stepIndex == nil {
		a.stepIndex = make(map[string]int)
	}
	s := &stepState{obj: gen.RunStepObject{Id: id, Object: "thread.run.step"}}
	a.stepIndex[id] = len(a.steps)
	a.steps = append(a.steps, s)
	return s
}

func (a *Accumulator) addStepDelta(d *gen.RunStepDeltaObject) error {
	st := a.step(d.Id)
	if d.Delta.StepDetails == nil {
		return nil
	}
	raw, _ := d.Delta.StepDetails.MarshalJSON()
	var dm map[string]any
	if err := json.Unmarshal(raw, &dm); err != nil {
		return fmt.Errorf("run step %s: step_details: %w", d.Id, err)
	}
	if a.OnToolCallDelta != nil {
		if calls, ok := dm["tool_calls"].([]any); ok {
			for _, c := range calls {
				if cm, ok := c.(map[string]any); ok {
					a.OnToolCallDelta(toolCallDelta(d.Id, cm))
				}
			}
		}
	}
	if st.details == nil {
		st.details = map[string]any{}
		if cur, _ := st.obj.StepDetails.MarshalJSON(); len(cur) > 0 {
			_ = json.Unmarshal(cur, &st.details)
			if st.details == nil {
				st.details = map[string]any{}
			}
		}
	}
	if _, err := mergeValue("", st.details, dm); err != nil {
		return fmt.Errorf("run step %s: step_details: %w", d.Id, err)
	}
	return nil
}

// toolCallDelta extracts the hook's view of one tool call fragment.
func toolCallDelta(stepID string, m map[string]any) ToolCallDelta {
	d := ToolCallDelta{StepID: stepID}
	if f, ok := m["index"].(float64); ok {
		d.Index = int(f)
	}
	d.Type, _ = m["type"].(string)
	d.ID, _ = m["id"].(string)
	if fn, ok := m["function"].(map[string]any); ok {
		d.Name, _ = fn["name"].(string)
		d.Arguments, _ = fn["arguments"].(string)
	}
	if ci, ok := m["code_interpreter"].(map[string]any); ok {
		d.Input, _ = ci["input"].(string)
	}
	return d
}

// build returns the step with its merged details.
func (s *stepState) build() gen.RunStepObject {
	obj := s.obj
	if s.details != nil {
		d := cleanJSON(s.details)
		if raw, err := json.Marshal(d); err == nil {
			var sd gen.RunStepDetails
			if sd.UnmarshalJSON(raw) == nil {
				obj.StepDetails = sd
			}
		}
	}
	return obj
}

// --- generic delta merging ---

// concatKeys are the string fields that deltas deliver in pieces.
var concatKeys = map[string]bool{
	"value":     true, // text
	"arguments": true, // function arguments
	"input":     true, // code interpreter input
	"logs":      true, // code interpreter logs
	"refusal":   true, // refusal text
	"text":      true, // annotation text
}

// strBuf is a string being built from delta pieces; appends are amortized
// O(1). It marshals as a JSON string.
type strBuf struct{ b []byte }

// MarshalJSON encodes the string.
func (s *strBuf) MarshalJSON() ([]byte, error) { return json.Marshal(string(s.b)) }

// checkIndex validates a delta's index against a list of length n.
func checkIndex(idx, n int) error {
	if idx < 0 || idx > n+maxDeltaIndexGap {
		return fmt.Errorf("index %d out of range (list has %d entries)", idx, n)
	}
	return nil
}

var errNoIndex = errors.New("without index")

// mergeIndexed merges the delta entry d (an object with an "index") into
// list at that index and returns the list.
func mergeIndexed(list []any, d map[string]any) ([]any, error) {
	f, ok := d["index"].(float64)
	if !ok {
		return list, errNoIndex
	}
	idx := int(f)
	if float64(idx) != f {
		return list, fmt.Errorf("index %v is not an integer", f)
	}
	if err := checkIndex(idx, len(list)); err != nil {
		return list, err
	}
	delete(d, "index")
	for len(list) <= idx {
		list = append(list, nil)
	}
	v, err := mergeValue("", list[idx], d)
	if err != nil {
		return list, err
	}
	list[idx] = v
	return list, nil
}

// mergeValue merges the delta value dv for key k into the accumulated value
// av (nil when absent) and returns the result: a null delta keeps av, the
// strings of concatKeys are appended, objects are merged key by key, list
// entries that are objects with an "index" are merged at that index (other
// entries are appended), and any other value replaces av.
func mergeValue(k string, av, dv any) (any, error) {
	switch d := dv.(type) {
	case nil:
		return av, nil
	case string:
		if !concatKeys[k] {
			return d, nil
		}
		switch a := av.(type) {
		case *strBuf:
			a.b = append(a.b, d...)
			return a, nil
		case string:
			return &strBuf{b: append([]byte(a), d...)}, nil
		}
		return &strBuf{b: []byte(d)}, nil
	case map[string]any:
		a, ok := av.(map[string]any)
		if !ok {
			a = make(map[string]any, len(d))
		}
		for dk, dvv := range d {
			v, err := mergeValue(dk, a[dk], dvv)
			if err != nil {
				return av, fmt.Errorf("%s: %w", dk, err)
			}
			if v != nil {
				a[dk] = v
			}
		}
		return a, nil
	case []any:
		a, _ := av.([]any)
		for _, e := range d {
			if em, ok := e.(map[string]any); ok {
				if _, has := em["index"]; has {
					var err error
					if a, err = mergeIndexed(a, em); err != nil {
						return av, fmt.Errorf("entry %w", err)
					}
					continue
				}
			}
			v, err := mergeValue("", nil, e)
			if err != nil {
				return av, err
			}
			a = append(a, v)
		}
		return a, nil
	}
	return dv, nil
}

// cleanJSON returns v with the nil entries of lists (index gaps) removed;
// strBufs marshal themselves.
func cleanJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = cleanJSON(e)
		}
		return out
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			if e != nil {
				out = append(out, cleanJSON(e))
			}
		}
		return out
	}
	return v
}
