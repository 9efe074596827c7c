package helpers

import (
	"fmt"
	"strings"

	"github.com/assistants-go/assistants/gen"
)

// MessageDelta is the data of a thread.message.delta event: the ID of the
// message being written and what changed. Stream decodes it in one pass into
// this form, whose text needs no pointer checks: a part's Text is a value
// (the zero DeltaText for other kinds of part) where the generated
// gen.MessageDeltaObject holds pointers. Generated returns that form.
type MessageDelta struct {
	// Id is the ID of the message being changed.
	Id string `json:"id"`
	// Object is always "thread.message.delta".
	Object gen.MessageDeltaObjectObject `json:"object"`
	// Delta holds the fields that changed.
	Delta MessageDeltaChange `json:"delta"`
}

// MessageDeltaChange is the "delta" field of a MessageDelta.
type MessageDeltaChange struct {
	// Role is who wrote the message; usually only in the first delta.
	Role *gen.MessageDeltaObjectDeltaRole `json:"role,omitempty"`
	// Content holds the content parts added or extended, in order.
	Content []DeltaPart `json:"content,omitempty"`
}

// DeltaPart is one content part of a message delta. Type says which field
// holds it: "text" (Text), "image_file" (ImageFile), "image_url" (ImageUrl)
// or "refusal" (Refusal); Text is the zero DeltaText for the other types.
// Index is the position of the part in the message's content; nil when the
// server omitted it.
type DeltaPart struct {
	Index     *int                              `json:"index"`
	Type      string                            `json:"type"`
	Text      DeltaText                         `json:"text,omitzero"`
	ImageFile *gen.MessageDeltaContentImageFile `json:"image_file,omitempty"`
	ImageUrl  *gen.MessageDeltaContentImageUrl  `json:"image_url,omitempty"`
	Refusal   *string                           `json:"refusal,omitempty"`
}

// DeltaText is the text of a "text" DeltaPart: the text to append and the
// annotations added with it.
type DeltaText struct {
	Value       string            `json:"value,omitempty"`
	Annotations []DeltaAnnotation `json:"annotations,omitempty"`
}

// DeltaAnnotation is an annotation arriving in a stream, as far as it
// arrived: gen.MessageDeltaContentTextAnnotation with Index a pointer, nil
// when the server omitted it (the Accumulator refuses such an annotation:
// it cannot tell which one to extend).
type DeltaAnnotation struct {
	// Index is the position of the annotation in the text part.
	Index *int `json:"index,omitempty"`
	// Type is "file_citation" (FileCitation) or "file_path" (FilePath).
	Type gen.MessageDeltaContentTextAnnotationType `json:"type,omitempty"`
	// Text is the span as it appears in the text.
	Text *string `json:"text,omitempty"`
	// FileCitation is the cited file of a file_citation.
	FileCitation *gen.MessageDeltaContentFileCitation `json:"file_citation,omitempty"`
	// FilePath is the generated file of a file_path.
	FilePath *gen.MessageDeltaContentFilePath `json:"file_path,omitempty"`
	// StartIndex and EndIndex are the span's offsets.
	StartIndex *int `json:"start_index,omitempty"`
	EndIndex   *int `json:"end_index,omitempty"`
}

// Text returns the text of d's text parts, concatenated in order (refusals
// and images are skipped).
func (d *MessageDelta) Text() string {
	switch {
	case d == nil:
		return ""
	case len(d.Delta.Content) == 1:
		return d.Delta.Content[0].Text.Value
	}
	var b strings.Builder
	for _, p := range d.Delta.Content {
		b.WriteString(p.Text.Value)
	}
	return b.String()
}

// Generated returns d as the generated type, gen.MessageDeltaObject. It
// fails on a part of an unknown Type.
func (d *MessageDelta) Generated() (*gen.MessageDeltaObject, error) {
	out := &gen.MessageDeltaObject{Id: d.Id, Object: d.Object, Delta: gen.MessageDelta{Role: d.Delta.Role}}
	if d.Delta.Content == nil {
		return out, nil
	}
	content := make([]gen.MessageDeltaContent, len(d.Delta.Content))
	for i, p := range d.Delta.Content {
		c := gen.MessageDeltaContent{Type: gen.MessageDeltaContentType(p.Type)}
		if p.Index != nil {
			c.Index = *p.Index
		}
		switch c.Type {
		case gen.MessageDeltaContentTypeText:
			if p.Text.Value != "" || p.Text.Annotations != nil {
				c.Text = &gen.MessageDeltaContentText{}
				if p.Text.Value != "" {
					c.Text.Value = &p.Text.Value
				}
				if p.Text.Annotations != nil {
					anns := make([]gen.MessageDeltaContentTextAnnotation, len(p.Text.Annotations))
					for j, a := range p.Text.Annotations {
						anns[j] = gen.MessageDeltaContentTextAnnotation{Type: a.Type, Text: a.Text,
							FileCitation: a.FileCitation, FilePath: a.FilePath, StartIndex: a.StartIndex, EndIndex: a.EndIndex}
						if a.Index != nil {
							anns[j].Index = *a.Index
						}
					}
					c.Text.Annotations = &anns
				}
			}
		case gen.MessageDeltaContentTypeImageFile:
			c.ImageFile = p.ImageFile
		case gen.MessageDeltaContentTypeImageUrl:
			c.ImageUrl = p.ImageUrl
		case gen.MessageDeltaContentTypeRefusal:
			c.Refusal = p.Refusal
		default:
			return nil, fmt.Errorf("helpers: message delta %s part %d: unknown content part type %q", d.Id, i, p.Type)
		}
		content[i] = c
	}
	out.Delta.Content = &content
	return out, nil
}
