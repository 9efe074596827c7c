package extract

import (
	"strings"

	"golang.org/x/net/html"
)

// skipped elements hold no readable text.
var skipped = map[string]bool{"script": true, "style": true, "noscript": true, "template": true, "svg": true, "head": true, "iframe": true, "object": true}

// blocks end a line.
var blocks = map[string]bool{"p": true, "div": true, "br": true, "li": true, "tr": true, "h1": true, "h2": true, "h3": true,
	"h4": true, "h5": true, "h6": true, "title": true, "section": true, "article": true, "header": true, "footer": true,
	"pre": true, "blockquote": true, "table": true, "ul": true, "ol": true, "dt": true, "dd": true, "hr": true, "td": true, "th": true}

// htmlText returns the readable text of an HTML document: its title and
// body text with entities decoded, one line per block, without scripts,
// styles and markup.
func htmlText(doc string) string {
	z := html.NewTokenizer(strings.NewReader(doc))
	var sb, line strings.Builder
	flush := func() {
		if l := strings.Join(strings.Fields(line.String()), " "); l != "" {
			sb.WriteString(l)
			sb.WriteByte('\n')
		}
		line.Reset()
	}
	skip := 0
	inTitle := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			flush()
			return sb.String()
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if tag == "title" {
				inTitle = tt == html.StartTagToken
			}
			if skipped[tag] && tt != html.SelfClosingTagToken {
				if tt == html.StartTagToken {
					skip++
				} else if skip > 0 {
					skip--
				}
			}
			if blocks[tag] {
				flush()
			} else if tt == html.EndTagToken || tt == html.StartTagToken {
				line.WriteByte(' ')
			}
		case html.TextToken:
			if skip == 0 || inTitle {
				line.Write(z.Text())
			}
		}
	}
}
