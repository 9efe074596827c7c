// Package extract gets the text out of uploaded files for retrieval:
// plain text, Markdown, source code, CSV and other text formats as they
// are (UTF-8, or UTF-16 with a byte order mark), JSON once checked, HTML
// without its markup, scripts and styles, PDF (text layer, through
// github.com/ledongthuc/pdf) and docx (the document's paragraphs).
//
// A file it cannot use gives an *Error whose Code is the vector store
// file's last_error code ("unsupported_file" or "invalid_file") and whose
// message says why, in words a user can act on.
package extract

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Last error codes of the API.
const (
	// CodeUnsupported: a file type retrieval does not read.
	CodeUnsupported = "unsupported_file"
	// CodeInvalid: a file of a supported type that cannot be used
	// (empty, malformed, too large, binary).
	CodeInvalid = "invalid_file"
)

// Kinds of failure, wrapped by *Error (test with errors.Is).
var (
	ErrUnsupported = errors.New("extract: unsupported file type")
	ErrEmpty       = errors.New("extract: no text")
	ErrTooLarge    = errors.New("extract: too large")
	ErrMalformed   = errors.New("extract: malformed file")
	ErrBinary      = errors.New("extract: binary data")
)

// Error is a file that gives no text.
type Error struct {
	// Code is the API's last_error code: CodeUnsupported or CodeInvalid.
	Code string
	// Message says why, naming the file.
	Message string
	// Kind is one of the Err* values above.
	Kind error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

func fail(code string, kind error, format string, args ...any) *Error {
	return &Error{Code: code, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Options configure Text.
type Options struct {
	// MaxBytes bounds the file. Default 64 MiB (the server's upload limit).
	MaxBytes int64
	// MaxTextBytes bounds the extracted text. Default 32 MiB.
	MaxTextBytes int
	// MaxPages bounds the pages read from a PDF. Default 5000.
	MaxPages int
}

// unsupported maps extensions of known formats retrieval does not read to
// their names.
var unsupported = map[string]string{
	".doc": "Word 97-2003 documents", ".xls": "Excel workbooks", ".xlsx": "Excel workbooks",
	".ppt": "PowerPoint presentations", ".pptx": "PowerPoint presentations", ".odt": "OpenDocument files",
	".rtf": "RTF documents", ".epub": "EPUB books", ".png": "images", ".jpg": "images", ".jpeg": "images",
	".gif": "images", ".webp": "images", ".bmp": "images", ".tiff": "images", ".svg": "SVG images",
	".mp3": "audio files", ".wav": "audio files", ".mp4": "video files", ".mov": "video files",
	".zip": "archives", ".gz": "archives", ".tar": "archives", ".7z": "archives", ".rar": "archives",
	".exe": "executables", ".dll": "executables", ".so": "executables", ".bin": "binary files",
}

// Text returns the text of the file called filename (its extension picks
// the format, or its first bytes for PDF and docx). The text is valid
// UTF-8 with \n line ends. An unusable file gives an *Error.
func Text(filename string, data []byte, opts ...func(*Options)) (string, error) {
	o := Options{MaxBytes: 64 << 20, MaxTextBytes: 32 << 20, MaxPages: 5000}
	for _, f := range opts {
		f(&o)
	}
	name := path.Base(strings.ReplaceAll(filename, "\\", "/"))
	ext := strings.ToLower(path.Ext(name))
	if int64(len(data)) > o.MaxBytes {
		return "", fail(CodeInvalid, ErrTooLarge, "%s is %d bytes, over the limit of %d bytes for retrieval.", name, len(data), o.MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "", fail(CodeInvalid, ErrEmpty, "%s is empty.", name)
	}
	var (
		text string
		err  *Error
	)
	switch {
	case ext == ".pdf" || bytes.HasPrefix(data, []byte("%PDF-")):
		text, err = pdfText(name, data, o)
	case ext == ".docx" || ext == ".docm" || ext == ".dotx":
		text, err = docxText(name, data, o)
	case bytes.HasPrefix(data, []byte("\xD0\xCF\x11\xE0")):
		return "", fail(CodeUnsupported, ErrUnsupported, "%s is a legacy or encrypted Office file, which retrieval does not read; save it as docx or PDF.", name)
	case bytes.HasPrefix(data, []byte("PK\x03\x04")) && isDocx(data):
		text, err = docxText(name, data, o)
	case unsupported[ext] != "":
		return "", fail(CodeUnsupported, ErrUnsupported, "%s: %s are not supported for retrieval.", name, unsupported[ext])
	default:
		text, err = plainText(name, data)
		if err == nil {
			switch {
			case ext == ".html" || ext == ".htm" || ext == ".xhtml" || (ext == "" && looksHTML(text)):
				text = htmlText(text)
			case ext == ".json":
				if !json.Valid([]byte(text)) {
					return "", fail(CodeInvalid, ErrMalformed, "%s is not valid JSON.", name)
				}
			}
		}
	}
	if err != nil {
		return "", err
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if strings.TrimSpace(text) == "" {
		return "", fail(CodeInvalid, ErrEmpty, "%s has no text to search.", name)
	}
	if len(text) > o.MaxTextBytes {
		return "", fail(CodeInvalid, ErrTooLarge, "%s holds %d bytes of text, over the limit of %d bytes for retrieval.", name, len(text), o.MaxTextBytes)
	}
	return text, nil
}

// plainText decodes a text file: UTF-8 (a byte order mark dropped) or
// UTF-16 with a byte order mark; binary data is refused.
func plainText(name string, data []byte) (string, *Error) {
	switch {
	case bytes.HasPrefix(data, []byte("\xEF\xBB\xBF")):
		data = data[3:]
	case bytes.HasPrefix(data, []byte("\xFF\xFE")), bytes.HasPrefix(data, []byte("\xFE\xFF")):
		var order binary.ByteOrder = binary.LittleEndian
		if data[0] == 0xFE {
			order = binary.BigEndian
		}
		data = data[2:]
		if len(data)%2 != 0 {
			return "", fail(CodeInvalid, ErrMalformed, "%s is not valid UTF-16 text: it has an odd number of bytes.", name)
		}
		u := make([]uint16, len(data)/2)
		for i := range u {
			u[i] = order.Uint16(data[2*i:])
		}
		data = []byte(string(utf16.Decode(u)))
	}
	if bytes.IndexByte(data, 0) >= 0 || controlShare(data) > 0.05 {
		return "", fail(CodeInvalid, ErrBinary, "%s looks like binary data, not text.", name)
	}
	if !utf8.Valid(data) {
		return "", fail(CodeUnsupported, ErrUnsupported, "%s is not UTF-8 (or UTF-16) text; save it as UTF-8.", name)
	}
	return string(data), nil
}

// controlShare is the share of control bytes other than tab, line feed,
// form feed and carriage return in (a sample of) data.
func controlShare(data []byte) float64 {
	sample := data[:min(len(data), 64<<10)]
	n := 0
	for _, c := range sample {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7f {
			n++
		}
	}
	return float64(n) / float64(len(sample))
}

func looksHTML(text string) bool {
	head := strings.ToLower(strings.TrimSpace(text[:min(len(text), 512)]))
	return strings.HasPrefix(head, "<!doctype html") || strings.HasPrefix(head, "<html")
}
