package extract

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

func isDocx(data []byte) bool {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return false
	}
	for _, f := range zr.File {
		if f.Name == "word/document.xml" {
			return true
		}
	}
	return false
}

// docxText reads the paragraphs of word/document.xml: text runs, tabs and
// breaks, one line per paragraph (deleted text left out).
func docxText(name string, data []byte, o Options) (string, *Error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid docx file: it is not a zip archive.", name)
	}
	var doc *zip.File
	for _, f := range zr.File {
		if f.Name == "word/document.xml" {
			doc = f
		}
	}
	if doc == nil {
		return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid docx file: it has no word/document.xml.", name)
	}
	// The XML is several times larger than its text; bound what we inflate.
	limit := int64(o.MaxTextBytes) * 8
	if doc.UncompressedSize64 > uint64(limit) {
		return "", fail(CodeInvalid, ErrTooLarge, "%s is too large: its document part inflates to %d bytes.", name, doc.UncompressedSize64)
	}
	rc, err := doc.Open()
	if err != nil {
		return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid docx file: %s.", name, err)
	}
	defer rc.Close()
	lr := &io.LimitedReader{R: rc, N: limit + 1}
	dec := xml.NewDecoder(lr)
	var sb strings.Builder
	inText, deleted := false, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.N <= 0 {
				return "", fail(CodeInvalid, ErrTooLarge, "%s is too large: its document part inflates past %d bytes.", name, limit)
			}
			return "", fail(CodeInvalid, ErrMalformed, "%s is not a valid docx file: its document XML is malformed.", name)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "t":
				inText = true
			case "del":
				deleted++
			case "tab":
				sb.WriteByte('\t')
			case "br", "cr":
				sb.WriteByte('\n')
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				inText = false
			case "del":
				deleted--
			case "p":
				sb.WriteByte('\n')
			}
		case xml.CharData:
			if inText && deleted == 0 {
				sb.Write(t)
			}
		}
		if sb.Len() > o.MaxTextBytes {
			return "", fail(CodeInvalid, ErrTooLarge, "%s holds over %d bytes of text, the limit for retrieval.", name, o.MaxTextBytes)
		}
	}
	return sb.String(), nil
}
