package helpers

import (
	"fmt"
	"strings"

	"github.com/assistants-go/assistants/gen"
)

// MessageDelta is the data of a thread.message.delta event: the ID of the
// message being written and what changed. Stream decodes it in one pass: each
// content part is a flat DeltaPart holding the fields of every kind of part,
// where the generated gen.MessageDeltaObject keeps each part as a union whose
// variant is decoded a second time (As...). Generated returns that form.
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
	Value       string                                  `json:"value,omitempty"`
	Annotations []gen.MessageDeltaContentTextAnnotation `json:"annotations,omitempty"`
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

// Generated returns d as the generated type, each part as a
// gen.MessageDeltaContent union. It fails on a part of an unknown Type.
func (d *MessageDelta) Generated() (*gen.MessageDeltaObject, error) {
	out := &gen.MessageDeltaObject{Id: d.Id, Object: d.Object, Delta: gen.MessageDelta{Role: d.Delta.Role}}
	if d.Delta.Content == nil {
		return out, nil
	}
	content := make([]gen.MessageDeltaContent, len(d.Delta.Content))
	for i, p := range d.Delta.Content {
		idx := 0
		if p.Index != nil {
			idx = *p.Index
		}
		var err error
		switch p.Type {
		case "text":
			v := gen.MessageDeltaContentTextObject{Index: idx, Type: gen.MessageDeltaContentTextObjectTypeText}
			if p.Text.Value != "" || p.Text.Annotations != nil {
				v.Text = &gen.MessageDeltaContentText{}
				if p.Text.Value != "" {
					v.Text.Value = &p.Text.Value
				}
				if p.Text.Annotations != nil {
					v.Text.Annotations = &p.Text.Annotations
				}
			}
			err = content[i].FromMessageDeltaContentTextObject(v)
		case "image_file":
			err = content[i].FromMessageDeltaContentImageFileObject(gen.MessageDeltaContentImageFileObject{
				Index: idx, Type: gen.MessageDeltaContentImageFileObjectTypeImageFile, ImageFile: p.ImageFile})
		case "image_url":
			err = content[i].FromMessageDeltaContentImageUrlObject(gen.MessageDeltaContentImageUrlObject{
				Index: idx, Type: gen.MessageDeltaContentImageUrlObjectTypeImageUrl, ImageUrl: p.ImageUrl})
		case "refusal":
			err = content[i].FromMessageDeltaContentRefusalObject(gen.MessageDeltaContentRefusalObject{
				Index: idx, Type: gen.MessageDeltaContentRefusalObjectTypeRefusal, Refusal: p.Refusal})
		default:
			err = fmt.Errorf("unknown content part type %q", p.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("helpers: message delta %s part %d: %w", d.Id, i, err)
		}
	}
	out.Delta.Content = &content
	return out, nil
}
