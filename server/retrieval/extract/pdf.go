package extract

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/ledongthuc/pdf"
)

// pdfText reads the text layer of a PDF, page by page (blank line between
// pages). The PDF library panics on some malformed files: a panic is a
// malformed file here, not a crash.
func pdfText(name string, data []byte, o Options) (text string, ferr *Error) {
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid PDF: it does not start with %%PDF-.", name)
	}
	defer func() {
		if r := recover(); r != nil {
			text, ferr = "", fail(CodeInvalid, ErrMalformed, "%s is not a valid PDF: %s.", name, shortReason(fmt.Sprint(r)))
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if strings.Contains(err.Error(), "password") || strings.Contains(err.Error(), "encrypt") {
			return "", fail(CodeUnsupported, ErrUnsupported, "%s is an encrypted PDF; remove the password and upload it again.", name)
		}
		return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid PDF: %s.", name, shortReason(err.Error()))
	}
	// The library's Page and inherited-attribute lookups loop forever on
	// a page tree with a cycle, so walk the tree here, bounded.
	pages, ok := pageList(r.Trailer().Key("Root").Key("Pages"), o.MaxPages)
	if !ok {
		if len(pages) > o.MaxPages {
			return "", fail(CodeInvalid, ErrTooLarge, "%s has over %d pages, the limit for retrieval.", name, o.MaxPages)
		}
		return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid PDF: its page tree is broken.", name)
	}
	var sb strings.Builder
	fonts := map[string]*pdf.Font{}
	for i, v := range pages {
		if !parentsEnd(v) {
			return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid PDF: page %d has a broken parent chain.", name, i+1)
		}
		p := pdf.Page{V: v}
		for _, f := range p.Fonts() {
			if _, ok := fonts[f]; !ok {
				font := p.Font(f)
				fonts[f] = &font
			}
		}
		t, err := p.GetPlainText(fonts)
		if err != nil {
			return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid PDF: page %d: %s.", name, i+1, shortReason(err.Error()))
		}
		if t = strings.TrimSpace(t); t != "" {
			if sb.Len() > 0 {
				sb.WriteString("\n\n")
			}
			sb.WriteString(t)
		}
		if sb.Len() > o.MaxTextBytes {
			return "", fail(CodeInvalid, ErrTooLarge, "%s holds over %d bytes of text, the limit for retrieval.", name, o.MaxTextBytes)
		}
	}
	if strings.TrimSpace(sb.String()) == "" {
		return "", fail(CodeInvalid, ErrEmpty, "%s has no text layer (a scanned PDF?); retrieval does not read text in images.", name)
	}
	return strings.ToValidUTF8(sb.String(), "\uFFFD"), nil
}

func shortReason(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "malformed PDF: ")
	if len(s) > 120 {
		s = s[:120]
	}
	return strings.ToValidUTF8(s, "")
}

// Bounds of the page tree walk.
const (
	maxTreeDepth   = 32
	maxParentChain = 64
)

// pageList returns the page objects of a page tree in order. ok is false
// when the tree is deeper than maxTreeDepth, has more than max pages, or
// visits more nodes than a tree of max pages can have (a cycle).
func pageList(root pdf.Value, max int) (pages []pdf.Value, ok bool) {
	budget := 2*max + 64
	type frame struct {
		node pdf.Value
		next int
	}
	if root.Key("Type").Name() != "Pages" {
		return nil, false
	}
	stack := []frame{{node: root}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		kids := top.node.Key("Kids")
		if top.next >= kids.Len() {
			stack = stack[:len(stack)-1]
			continue
		}
		kid := kids.Index(top.next)
		top.next++
		if budget--; budget < 0 {
			return pages, false
		}
		switch kid.Key("Type").Name() {
		case "Pages":
			if len(stack) >= maxTreeDepth {
				return pages, false
			}
			stack = append(stack, frame{node: kid})
		case "Page":
			pages = append(pages, kid)
			if len(pages) > max {
				return pages, false
			}
		}
	}
	return pages, true
}

// parentsEnd reports whether a page's Parent chain ends within
// maxParentChain steps (the library follows it to inherit resources).
func parentsEnd(v pdf.Value) bool {
	for range maxParentChain {
		if v.IsNull() {
			return true
		}
		v = v.Key("Parent")
	}
	return v.IsNull()
}
