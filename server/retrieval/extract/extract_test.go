package extract

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// makePDF writes a PDF with one page per text, in Helvetica, with a
// correct cross-reference table.
func makePDF(pages ...string) []byte {
	var objs []string
	kids := ""
	for i := range pages {
		kids += fmt.Sprintf("%d 0 R ", 4+2*i)
	}
	objs = append(objs, "<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", kids, len(pages)),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	for i, text := range pages {
		var content strings.Builder
		content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
		for _, line := range strings.Split(text, "\n") {
			fmt.Fprintf(&content, "(%s) Tj T*\n", strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(line))
		}
		content.WriteString("ET")
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i),
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()))
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// makeDocx writes a docx whose document.xml body is body.
func makeDocx(t *testing.T, body string, withDocument bool) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("[Content_Types].xml")
	require.NoError(t, err)
	_, _ = w.Write([]byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`))
	if withDocument {
		w, err = zw.Create("word/document.xml")
		require.NoError(t, err)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` + body + `</w:body></w:document>`))
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func utf16le(s string) []byte {
	out := []byte{0xFF, 0xFE}
	for _, r := range s {
		out = append(out, byte(r), byte(r>>8))
	}
	return out
}

func TestText(t *testing.T) {
	docx := `<w:p><w:r><w:t>Refund policy</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Returns within </w:t></w:r><w:r><w:t>30 days.</w:t></w:r><w:r><w:tab/><w:t>Keep the receipt.</w:t></w:r></w:p>
<w:p><w:del><w:r><w:delText>old clause</w:delText></w:r></w:del><w:r><w:t>Café ✓</w:t></w:r></w:p>`
	tests := []struct {
		name, file string
		data       []byte
		want       []string // substrings of the text
		notWant    []string
	}{
		{"txt", "notes.txt", []byte("Line one\r\nLine two"), []string{"Line one\nLine two"}, []string{"\r"}},
		{"markdown", "README.md", []byte("# Title\n\nSome *text*."), []string{"# Title\n\nSome *text*."}, nil},
		{"go source", "main.go", []byte("package main\n\nfunc main() {}\n"), []string{"func main()"}, nil},
		{"csv", "data.csv", []byte("name,price\nwidget,9.99\n"), []string{"widget,9.99"}, nil},
		{"json", "data.json", []byte(`{"city": "Zürich", "n": 3}`), []string{`"city": "Zürich"`}, nil},
		{"no extension", "LICENSE", []byte("Permission is hereby granted"), []string{"Permission"}, nil},
		{"utf-8 bom", "bom.txt", []byte("\xEF\xBB\xBFhello"), []string{"hello"}, []string{"\uFEFF"}},
		{"utf-16", "wide.txt", utf16le("naïve café"), []string{"naïve café"}, nil},
		{"html", "page.html", []byte(`<!DOCTYPE html><html><head><title>Shop &amp; Co</title><style>body{color:red}</style>
<script>var secret = 1;</script></head><body><h1>Returns</h1><p>Send it back within <b>30</b>&nbsp;days.</p><ul><li>One</li><li>Two</li></ul></body></html>`),
			[]string{"Shop & Co\n", "Returns\n", "Send it back within 30 days.\n", "One\nTwo"}, []string{"color:red", "secret", "<p>"}},
		{"html sniffed", "page", []byte("<html><body><p>Hello <i>world</i></p></body></html>"), []string{"Hello world"}, []string{"<i>"}},
		{"pdf", "report.pdf", makePDF("Quarterly report\nRevenue grew 12 percent", "Second page (with parentheses)"),
			[]string{"Quarterly report", "Revenue grew 12 percent", "Second page (with parentheses)"}, nil},
		{"pdf by magic", "upload.bin.pdf", makePDF("Magic works"), []string{"Magic works"}, nil},
		{"docx", "policy.docx", makeDocx(t, docx, true), []string{"Refund policy\nReturns within 30 days.\tKeep the receipt.\nCafé ✓"}, []string{"old clause"}},
		{"docx without extension", "upload", makeDocx(t, docx, true), []string{"Refund policy"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := Text(tt.file, tt.data)
			require.NoError(t, err)
			for _, w := range tt.want {
				assert.Contains(t, text, w)
			}
			for _, w := range tt.notWant {
				assert.NotContains(t, text, w)
			}
		})
	}
}

func TestTextErrors(t *testing.T) {
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + i/3)
	}
	goodPDF := makePDF("Some text")
	tests := []struct {
		name, file string
		data       []byte
		opts       func(*Options)
		code       string
		kind       error
		msg        string
	}{
		{"empty", "a.txt", nil, nil, CodeInvalid, ErrEmpty, "a.txt is empty."},
		{"blank", "a.txt", []byte(" \n\t "), nil, CodeInvalid, ErrEmpty, "a.txt is empty."},
		{"too large", "big.txt", []byte("0123456789"), func(o *Options) { o.MaxBytes = 5 }, CodeInvalid, ErrTooLarge, "big.txt is 10 bytes, over the limit of 5 bytes for retrieval."},
		{"text too large", "big.txt", []byte("0123456789"), func(o *Options) { o.MaxTextBytes = 5 }, CodeInvalid, ErrTooLarge, "big.txt holds 10 bytes of text, over the limit of 5 bytes for retrieval."},
		{"binary junk", "data.txt", junk, nil, CodeInvalid, ErrBinary, "data.txt looks like binary data, not text."},
		{"latin-1", "old.txt", []byte("caf\xe9 cr\xe8me"), nil, CodeUnsupported, ErrUnsupported, "old.txt is not UTF-8 (or UTF-16) text; save it as UTF-8."},
		{"image", "photo.PNG", []byte("\x89PNG\r\n\x1a\n...."), nil, CodeUnsupported, ErrUnsupported, "photo.PNG: images are not supported for retrieval."},
		{"xlsx", "sheet.xlsx", makeDocx(t, "", false), nil, CodeUnsupported, ErrUnsupported, "sheet.xlsx: Excel workbooks are not supported for retrieval."},
		{"legacy office", "old.doc", []byte("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"), nil, CodeUnsupported, ErrUnsupported, "old.doc is a legacy or encrypted Office file"},
		{"bad json", "x.json", []byte(`{"a": }`), nil, CodeInvalid, ErrMalformed, "x.json is not valid JSON."},
		{"html without text", "x.html", []byte("<html><script>x()</script></html>"), nil, CodeInvalid, ErrEmpty, "x.html has no text to search."},
		{"pdf not a pdf", "x.pdf", []byte("hello, I am text"), nil, CodeInvalid, ErrMalformed, "x.pdf is not a valid PDF: it does not start with %PDF-."},
		{"pdf truncated", "x.pdf", goodPDF[:len(goodPDF)/2], nil, CodeInvalid, ErrMalformed, "x.pdf is not a valid PDF"},
		{"pdf garbage", "x.pdf", append([]byte("%PDF-1.7\n"), junk...), nil, CodeInvalid, ErrMalformed, "x.pdf is not a valid PDF"},
		{"pdf without text", "scan.pdf", makePDF(""), nil, CodeInvalid, ErrEmpty, "scan.pdf has no text layer"},
		{"pdf too many pages", "x.pdf", makePDF("a", "b", "c"), func(o *Options) { o.MaxPages = 2 }, CodeInvalid, ErrTooLarge, "x.pdf has over 2 pages, the limit for retrieval."},
		{"docx not zip", "x.docx", []byte("plain text pretending"), nil, CodeInvalid, ErrMalformed, "x.docx is not a valid docx file: it is not a zip archive."},
		{"docx without document", "x.docx", makeDocx(t, "", false), nil, CodeInvalid, ErrMalformed, "x.docx is not a valid docx file: it has no word/document.xml."},
		{"docx bad xml", "x.docx", makeDocx(t, "<w:p><w:t>unclosed", true), nil, CodeInvalid, ErrMalformed, "its document XML is malformed"},
		{"docx too much text", "x.docx", makeDocx(t, "<w:p><w:t>"+strings.Repeat("a", 100)+"</w:t></w:p>", true), func(o *Options) { o.MaxTextBytes = 50 }, CodeInvalid, ErrTooLarge, "x.docx holds over 50 bytes of text"},
		{"path in name", `C:\Users\me\secret\doc.png`, []byte("x"), nil, CodeUnsupported, ErrUnsupported, "doc.png: images"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []func(*Options)
			if tt.opts != nil {
				opts = append(opts, tt.opts)
			}
			_, err := Text(tt.file, tt.data, opts...)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.code, e.Code)
			assert.True(t, errors.Is(err, tt.kind), "kind: %v", e.Kind)
			assert.Contains(t, e.Error(), tt.msg)
		})
	}
}

func FuzzText(f *testing.F) {
	f.Add("a.pdf", makePDF("fuzz me"))
	f.Add("a.txt", []byte("hello"))
	f.Add("a.html", []byte("<p>x</p>"))
	f.Add("a.docx", []byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		text, err := Text(name, data, func(o *Options) { o.MaxPages = 20 })
		if err != nil {
			var e *Error
			require.ErrorAs(t, err, &e)
			require.NotEmpty(t, e.Message)
			return
		}
		require.NotEmpty(t, strings.TrimSpace(text))
	})
}
