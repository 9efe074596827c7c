package server

import "encoding/json"

// callAssembler rebuilds tool calls from streamed tool_calls fragments.
// Backends disagree on the shape:
//
//   - OpenAI, vLLM, llama.cpp: the first fragment of a call carries its
//     index, id and name, later ones the index and a piece of the arguments
//     (vLLM may repeat the id on each);
//   - Ollama 0.20 and later: each call whole in its own chunk, all with
//     index 0 and distinct ids;
//   - older Ollama: whole calls with ids and no index at all.
//
// So a fragment belongs to the call that already has its id; otherwise to
// the call filling its slot (its index, or its position in the chunk when it
// has none), unless it carries a new id: then it starts a new call in that
// slot. One exception keeps a backend that sends a fresh id on every
// fragment working: a new id without a function name, while the slot's
// call is still mid-arguments (not yet valid JSON), continues that call.
// Calls keep the order in which they started.
type callAssembler struct {
	calls []*ToolCall
	slot  map[int]int    // slot -> position in calls of the call filling it
	byID  map[string]int // id -> position in calls
}

func (a *callAssembler) add(pos int, f chatToolCall) {
	if a.slot == nil {
		a.slot, a.byID = map[int]int{}, map[string]int{}
	}
	slot := pos
	if f.Index != nil {
		slot = *f.Index
	}
	at, known := a.byID[f.ID]
	if f.ID == "" || !known {
		cur, occupied := a.slot[slot]
		switch {
		case !occupied:
			at = a.start(slot)
		case f.ID != "" && a.calls[cur].ID != "" &&
			(f.Function.Name != "" || json.Valid([]byte(a.calls[cur].Arguments))):
			at = a.start(slot)
		default:
			at = cur
		}
	}
	c := a.calls[at]
	if c.ID == "" && f.ID != "" {
		c.ID = f.ID
		a.byID[f.ID] = at
	}
	if c.Name == "" {
		c.Name = f.Function.Name
	}
	c.Arguments += f.Function.Arguments
}

func (a *callAssembler) start(slot int) int {
	a.calls = append(a.calls, &ToolCall{})
	a.slot[slot] = len(a.calls) - 1
	return len(a.calls) - 1
}

// result returns the calls in the order they started.
func (a *callAssembler) result() []ToolCall {
	if len(a.calls) == 0 {
		return nil
	}
	out := make([]ToolCall, len(a.calls))
	for i, c := range a.calls {
		out[i] = *c
	}
	return out
}
