package bench

import (
	goopenai "github.com/sashabaranov/go-openai"

	openai "github.com/openai/openai-go/v3"

	"github.com/assistants-go/assistants/gen"
)

// The list benchmarks make every SDK do the same work with each message: read
// every text part's value and every annotation's text and file ID, and add
// them up in the summary (Chars: bytes of text and annotation text; Annots:
// annotations with a file ID). Every SDK decodes all of it in its typed
// reply (ours: content parts and annotations are flat structs, Type naming
// the field that holds the value); the floor's partial struct holds these
// fields too.

func (s *summary) tallyOurs(m *gen.MessageObject) {
	for _, part := range m.Content {
		if part.Type != gen.MessageContentTypeText {
			continue
		}
		s.Chars += len(part.Text.Value)
		for _, a := range part.Text.Annotations {
			s.Chars += len(a.Text)
			if a.FileCitation.FileId != "" || a.FilePath.FileId != "" {
				s.Annots++
			}
		}
	}
}

func (s *summary) tallyOpenAI(m *openai.Message) {
	for _, part := range m.Content {
		if part.Type != "text" {
			continue
		}
		s.Chars += len(part.Text.Value)
		for _, a := range part.Text.Annotations {
			s.Chars += len(a.Text)
			if a.FileCitation.FileID != "" || a.FilePath.FileID != "" {
				s.Annots++
			}
		}
	}
}

func (s *summary) tallyGoOpenAI(m *goopenai.Message) {
	for _, part := range m.Content {
		if part.Text == nil {
			continue
		}
		s.Chars += len(part.Text.Value)
		for _, a := range part.Text.Annotations {
			am, ok := a.(map[string]any)
			if !ok {
				continue
			}
			text, _ := am["text"].(string)
			s.Chars += len(text)
			for _, k := range []string{"file_citation", "file_path"} {
				if f, ok := am[k].(map[string]any); ok {
					if id, _ := f["file_id"].(string); id != "" {
						s.Annots++
					}
				}
			}
		}
	}
}

func (s *summary) tallyFloor(m *floorMessage) {
	for _, part := range m.Content {
		if part.Type != "text" {
			continue
		}
		s.Chars += len(part.Text.Value)
		for _, a := range part.Text.Annotations {
			s.Chars += len(a.Text)
			if a.FileCitation.FileID != "" || a.FilePath.FileID != "" {
				s.Annots++
			}
		}
	}
}
