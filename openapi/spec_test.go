package openapi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// referencePath is where OpenAI's published cut of the Assistants v2 spec sits
// beside a development checkout. Users' clones do not have it.
const referencePath = "../../shared/reference/openai-assistants-v2.yaml"

// nodeSeedPath is the Node SDK's Assistants resource, which lists every stream event.
const nodeSeedPath = "../../shared/seeds/openai-node-assistants.ts.txt"

func TestSpecValidates(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(Spec)
	require.NoError(t, err, "kin-openapi cannot load assistants.yaml")
	require.Equal(t, "3.0.3", doc.OpenAPI)
	require.NoError(t, doc.Validate(context.Background()), "assistants.yaml is not a valid OpenAPI 3.0 document")
}

// TestSpecDiscriminators checks the promise made to Go users: every union whose
// members carry a `type` tag has a discriminator whose mapping keys are the
// API's wire values of that tag, and every wire value is mapped.
func TestSpecDiscriminators(t *testing.T) {
	ours := loadYAML(t, Spec)
	schemas := ours.get("components", "schemas")
	require.NotNil(t, schemas)
	checked := 0
	for _, name := range schemas.keys() {
		s := schemas.get(name)
		members := s.seq("oneOf")
		if len(members) == 0 {
			continue
		}
		tag := ""
		if d := s.get("discriminator"); d != nil {
			tag = d.str("propertyName")
		}
		// Which tag do the object members share?
		wire := map[string]string{} // wire value -> member schema ref
		tagged := 0
		objects := 0
		for _, m := range members {
			ref := m.str("$ref")
			if ref == "" {
				continue // a bare string or array form: not part of the tagged union
			}
			objects++
			target := ours.resolve(ref)
			prop := tag
			if prop == "" {
				prop = "type"
			}
			enum := target.get("properties", prop).strings("enum")
			if len(enum) == 0 {
				continue
			}
			tagged++
			for _, v := range enum {
				wire[v] = ref
			}
		}
		if tagged == 0 || tagged != objects {
			continue
		}
		checked++
		require.NotEmptyf(t, tag, "%s: a union of %q-tagged objects needs a discriminator", name, "type")
		mapping := s.get("discriminator", "mapping")
		require.NotNilf(t, mapping, "%s: discriminator needs a mapping so Go sends the API's wire values", name)
		got := map[string]string{}
		for _, k := range mapping.keys() {
			got[k] = mapping.str(k)
		}
		require.Equalf(t, wire, got, "%s: mapping keys must be exactly the members' %s values", name, tag)
	}
	t.Logf("spec: %d discriminated unions checked", checked)
	require.GreaterOrEqual(t, checked, 15, "expected the API's unions (tools, content, annotations, step details, tool calls, outputs, chunking, filters, response formats, stream events)")
}

// TestSpecStreamEvents checks that every event the Node SDK knows (24 thread.*
// events, error and done) has a schema in the AssistantStreamEvent union.
func TestSpecStreamEvents(t *testing.T) {
	ours := loadYAML(t, Spec)
	mapping := ours.get("components", "schemas", "AssistantStreamEvent", "discriminator", "mapping")
	require.NotNil(t, mapping, "AssistantStreamEvent needs a discriminator mapping on `event`")
	have := map[string]bool{}
	for _, k := range mapping.keys() {
		have[k] = true
	}
	seed, err := os.ReadFile(nodeSeedPath)
	var want []string
	if err != nil {
		t.Logf("spec: %s not present (a user's clone); checking our own list of 26 events instead", nodeSeedPath)
		want = knownStreamEvents
	} else {
		found := map[string]bool{}
		for _, m := range regexp.MustCompile(`event: ['"](thread\.[a-z_.]+|error|done)['"]`).FindAllStringSubmatch(string(seed), -1) {
			found[m[1]] = true
		}
		// The seed types the 24 thread.* events and error; the end of stream is the
		// wire's `event: done`, which the SDK handles outside its union.
		found["done"] = true
		for e := range found {
			want = append(want, e)
		}
		sort.Strings(want)
		require.ElementsMatch(t, knownStreamEvents, want, "the seed's event list changed")
	}
	var missing []string
	for _, e := range want {
		if !have[e] {
			missing = append(missing, e)
		}
	}
	t.Logf("spec: %d/%d stream events", len(want)-len(missing), len(want))
	require.Empty(t, missing)
}

var knownStreamEvents = []string{
	"done", "error", "thread.created",
	"thread.message.completed", "thread.message.created", "thread.message.delta", "thread.message.in_progress", "thread.message.incomplete",
	"thread.run.cancelled", "thread.run.cancelling", "thread.run.completed", "thread.run.created", "thread.run.expired", "thread.run.failed",
	"thread.run.in_progress", "thread.run.incomplete", "thread.run.queued", "thread.run.requires_action",
	"thread.run.step.cancelled", "thread.run.step.completed", "thread.run.step.created", "thread.run.step.delta", "thread.run.step.expired",
	"thread.run.step.failed", "thread.run.step.in_progress",
}

// TestSpecMatchesReference compares our spec with OpenAI's published one: every
// operation with its parameters, and every property reachable from those
// operations, with a compatible type and the same enum values (ours may add).
func TestSpecMatchesReference(t *testing.T) {
	raw, err := os.ReadFile(referencePath)
	if err != nil {
		abs, _ := filepath.Abs(referencePath)
		t.Skipf("spec: reference spec not present at %s (it ships only beside the project's development checkout); comparison skipped", filepath.Base(abs))
	}
	ref := loadYAML(t, raw)
	ours := loadYAML(t, Spec)
	c := &comparer{ref: ref, ours: ours, seen: map[[2]*yaml.Node]bool{}}

	ops, matched := 0, 0
	for _, path := range ref.get("paths").keys() {
		for _, method := range ref.get("paths", path).keys() {
			if !httpMethods[method] {
				continue
			}
			ops++
			rop := ref.get("paths", path, method)
			oop := ours.get("paths", path, method)
			where := fmt.Sprintf("%s %s", strings.ToUpper(method), path)
			if oop == nil {
				c.fail("missing operation %s (%s)", where, rop.str("operationId"))
				continue
			}
			if rop.str("operationId") != oop.str("operationId") {
				c.fail("%s: operationId %q, reference has %q", where, oop.str("operationId"), rop.str("operationId"))
				continue
			}
			matched++
			c.compareParams(where, rop, oop)
			if rb := rop.get("requestBody", "content"); rb != nil {
				c.compareContent(where+" request", rb, oop.get("requestBody", "content"))
			}
			for _, code := range rop.get("responses").keys() {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				if rc := rop.get("responses", code, "content"); rc != nil {
					c.compareContent(where+" "+code, rc, oop.get("responses", code, "content"))
				}
			}
		}
	}
	t.Logf("spec: %d/%d operations, %d missing properties, %d type mismatches, %d enum mismatches, %d parameter mismatches, %d required-list mismatches",
		matched, ops, c.missing, c.types, c.enums, c.params, c.required)
	fmt.Printf("spec: %d/%d operations, %d missing properties, %d type mismatches\n", matched, ops, c.missing, c.types)
	for _, p := range c.problems {
		t.Error(p)
	}
	require.Equal(t, 44, ops, "the reference should list the 44 Assistants v2 operations")
}

var httpMethods = map[string]bool{"get": true, "post": true, "put": true, "patch": true, "delete": true}

type comparer struct {
	ref, ours                               *node
	seen                                    map[[2]*yaml.Node]bool
	missing, types, enums, params, required int
	problems                                []string
}

func (c *comparer) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *comparer) compareParams(where string, rop, oop *node) {
	type key struct{ name, in string }
	ourParams := map[key]*node{}
	for _, p := range oop.seq("parameters") {
		p = c.ours.deref(p)
		ourParams[key{p.str("name"), p.str("in")}] = p
	}
	for _, rp := range rop.seq("parameters") {
		rp = c.ref.deref(rp)
		k := key{rp.str("name"), rp.str("in")}
		op := ourParams[k]
		if op == nil {
			c.params++
			c.fail("%s: missing %s parameter %q", where, k.in, k.name)
			continue
		}
		if rp.str("required") != op.str("required") && !(rp.str("required") == "" && op.str("required") == "false") && !(rp.str("required") == "false" && op.str("required") == "") {
			c.params++
			c.fail("%s: parameter %q required=%q, reference %q", where, k.name, op.str("required"), rp.str("required"))
		}
		c.compareSchema(where+" param "+k.name, rp.get("schema"), op.get("schema"))
	}
	if len(ourParams) != len(rop.seq("parameters")) {
		c.params++
		c.fail("%s: %d parameters, reference has %d", where, len(ourParams), len(rop.seq("parameters")))
	}
}

func (c *comparer) compareContent(where string, rc, oc *node) {
	if oc == nil {
		c.fail("%s: no content", where)
		c.missing++
		return
	}
	for _, mt := range rc.keys() {
		o := oc.get(mt)
		if o == nil {
			// A download the reference calls JSON but that is really bytes: accept any one media type of ours.
			keys := oc.keys()
			if len(keys) == 0 {
				c.fail("%s: no %s content", where, mt)
				continue
			}
			o = oc.get(keys[0])
		}
		c.compareSchema(where, rc.get(mt, "schema"), o.get("schema"))
	}
}

// flat is a schema with its allOf/oneOf/anyOf members folded together.
// required holds the properties the schema always requires; condRequired
// those it requires in some cases only: in a member of a oneOf or anyOf
// (one kind of a union), or in a `not` clause (ours describes what each kind
// of a flat tagged object requires as "no object of this kind lacks its
// field").
type flat struct {
	types        map[string]bool
	enum         map[string]bool
	props        map[string][]*node
	items        []*node
	additional   []*node
	required     map[string]bool
	condRequired map[string]bool
}

func (c *comparer) flatten(doc *node, s *node, f *flat, depth int) {
	c.flattenIn(doc, s, f, depth, false)
}

func (c *comparer) flattenIn(doc *node, s *node, f *flat, depth int, cond bool) {
	s = doc.deref(s)
	if s == nil || depth > 20 {
		return
	}
	switch t := s.get("type"); {
	case t == nil:
	case t.n.Kind == yaml.SequenceNode:
		for _, x := range t.n.Content {
			f.types[x.Value] = true
		}
	default:
		f.types[t.n.Value] = true
	}
	for _, v := range s.strings("required") {
		if cond {
			f.condRequired[v] = true
		} else {
			f.required[v] = true
		}
	}
	if n := s.get("not"); n != nil {
		collectRequired(doc, n, f.condRequired, depth+1)
	}
	for _, v := range s.strings("enum") {
		f.enum[v] = true
	}
	if cst := s.get("const"); cst != nil {
		f.enum[cst.n.Value] = true
	}
	if p := s.get("properties"); p != nil {
		f.types["object"] = true
		for _, k := range p.keys() {
			f.props[k] = append(f.props[k], p.get(k))
		}
	}
	if it := s.get("items"); it != nil {
		f.items = append(f.items, it)
	}
	if ap := s.get("additionalProperties"); ap != nil && ap.n.Kind == yaml.MappingNode {
		f.additional = append(f.additional, ap)
	}
	for _, m := range s.seq("allOf") {
		c.flattenIn(doc, m, f, depth+1, cond)
	}
	for _, comb := range []string{"oneOf", "anyOf"} {
		for _, m := range s.seq(comb) {
			c.flattenIn(doc, m, f, depth+1, true)
		}
	}
}

// collectRequired adds every property named in a `required` list anywhere
// in s (through not, allOf, oneOf and anyOf) to out.
func collectRequired(doc, s *node, out map[string]bool, depth int) {
	s = doc.deref(s)
	if s == nil || depth > 20 {
		return
	}
	for _, v := range s.strings("required") {
		out[v] = true
	}
	if n := s.get("not"); n != nil {
		collectRequired(doc, n, out, depth+1)
	}
	for _, comb := range []string{"allOf", "oneOf", "anyOf"} {
		for _, m := range s.seq(comb) {
			collectRequired(doc, m, out, depth+1)
		}
	}
}

func newFlat() *flat {
	return &flat{types: map[string]bool{}, enum: map[string]bool{}, props: map[string][]*node{},
		required: map[string]bool{}, condRequired: map[string]bool{}}
}

func (c *comparer) compareSchema(where string, rs, os *node) {
	if rs == nil {
		return
	}
	if os == nil {
		c.missing++
		c.fail("%s: no schema", where)
		return
	}
	rd, od := c.ref.deref(rs), c.ours.deref(os)
	if rd == nil || od == nil {
		c.missing++
		c.fail("%s: unresolvable $ref (reference %v, ours %v)", where, rd != nil, od != nil)
		return
	}
	pair := [2]*yaml.Node{rd.n, od.n}
	if c.seen[pair] {
		return
	}
	c.seen[pair] = true
	rf, of := newFlat(), newFlat()
	c.flatten(c.ref, rs, rf, 0)
	c.flatten(c.ours, os, of, 0)

	delete(rf.types, "null")
	for t := range rf.types {
		if of.types[t] || (t == "integer" && of.types["number"]) {
			continue
		}
		c.types++
		c.fail("%s: type %s, ours has %v", where, t, keysOf(of.types))
	}
	for v := range rf.enum {
		if v == "null" && len(of.enum) > 0 {
			continue
		}
		if !of.enum[v] {
			c.enums++
			c.fail("%s: enum value %q missing (ours %v)", where, v, keysOf(of.enum))
		}
	}
	for _, name := range sortedKeys(rf.required) {
		if !of.required[name] {
			c.required++
			c.fail("%s: %q is required in the reference, not in ours", where, name)
		}
	}
	for _, name := range sortedKeys(rf.condRequired) {
		if !of.required[name] && !of.condRequired[name] {
			c.required++
			c.fail("%s: %q is required (for some kinds) in the reference, not in ours", where, name)
		}
	}
	for _, name := range sortedKeys(of.required) {
		if !rf.required[name] && !rf.condRequired[name] && len(rf.props) > 0 {
			c.required++
			c.fail("%s: %q is required in ours, not in the reference", where, name)
		}
	}
	for _, name := range sortedKeys(rf.props) {
		ops := of.props[name]
		if len(ops) == 0 {
			c.missing++
			c.fail("%s: missing property %q", where, name)
			continue
		}
		// Compare the reference's alternatives with ours folded together.
		for _, r := range rf.props[name] {
			c.compareSchema(where+"."+name, r, wrapAnyOf(ops))
		}
	}
	for _, r := range rf.items {
		if len(of.items) == 0 {
			c.types++
			c.fail("%s: reference has array items, ours none", where)
			continue
		}
		c.compareSchema(where+"[]", r, wrapAnyOf(of.items))
	}
	for _, r := range rf.additional {
		if len(of.additional) == 0 {
			c.missing++
			c.fail("%s: reference has additionalProperties schema, ours none", where)
			continue
		}
		c.compareSchema(where+"{}", r, wrapAnyOf(of.additional))
	}
}

// wrapAnyOf folds several schemas of ours into one anyOf node.
func wrapAnyOf(ns []*node) *node {
	if len(ns) == 1 {
		return ns[0]
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, n := range ns {
		seq.Content = append(seq.Content, n.n)
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "anyOf"}, seq}}
	return &node{n: m, root: ns[0].root}
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// node is a small read-only view over a YAML document with $ref resolution.
type node struct {
	n    *yaml.Node
	root *yaml.Node
}

func loadYAML(t *testing.T, b []byte) *node {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(b, &doc))
	require.Equal(t, yaml.DocumentNode, doc.Kind)
	return &node{n: doc.Content[0], root: doc.Content[0]}
}

func (x *node) get(path ...string) *node {
	if x == nil {
		return nil
	}
	cur := x.n
	for _, p := range path {
		if cur == nil || cur.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(cur.Content); i += 2 {
			if cur.Content[i].Value == p {
				next = cur.Content[i+1]
				break
			}
		}
		cur = next
	}
	if cur == nil {
		return nil
	}
	return &node{n: cur, root: x.root}
}

func (x *node) keys() []string {
	if x == nil || x.n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i < len(x.n.Content); i += 2 {
		out = append(out, x.n.Content[i].Value)
	}
	return out
}

func (x *node) str(path ...string) string {
	v := x.get(path...)
	if v == nil || v.n.Kind != yaml.ScalarNode {
		return ""
	}
	return v.n.Value
}

func (x *node) seq(path ...string) []*node {
	v := x.get(path...)
	if v == nil || v.n.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]*node, len(v.n.Content))
	for i, c := range v.n.Content {
		out[i] = &node{n: c, root: x.root}
	}
	return out
}

func (x *node) strings(path ...string) []string {
	var out []string
	for _, v := range x.seq(path...) {
		if v.n.Kind == yaml.ScalarNode {
			out = append(out, v.n.Value)
		}
	}
	return out
}

// resolve finds a local "#/a/b/c" reference in the document.
func (x *node) resolve(ref string) *node {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	root := &node{n: x.root, root: x.root}
	return root.get(strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
}

// deref follows $ref chains (bounded). A JSON Schema 2019-09 "$recursiveRef":
// "#" (used by the reference for nested filters) resolves to the component
// schema that declares "$recursiveAnchor": true.
func (x *node) deref(s *node) *node {
	for i := 0; s != nil && i < 10; i++ {
		if s.str("$recursiveRef") == "#" {
			s = x.recursiveAnchor()
			continue
		}
		ref := s.str("$ref")
		if ref == "" {
			return s
		}
		s = x.resolve(ref)
	}
	return s
}

func (x *node) recursiveAnchor() *node {
	schemas := (&node{n: x.root, root: x.root}).get("components", "schemas")
	for _, k := range schemas.keys() {
		if schemas.str(k, "$recursiveAnchor") == "true" {
			return schemas.get(k)
		}
	}
	return nil
}
