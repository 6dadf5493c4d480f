package manifest

import (
	"bytes"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reads JSON into a small tree. encoding/json accepts duplicate
// object keys, silently replaces invalid UTF-8, and locates syntax errors only
// by byte offset; a manifest must reject the first two where they occur and
// report the third by line and column, so the reader is our own. It follows
// RFC 8259 exactly (a test checks it against encoding/json), keeps number
// literals as written so "1.0" and "1e3" can be told from "1", and bounds
// nesting and the number of values so that hostile input can exhaust neither
// the stack nor memory.

// kind is the type of a JSON value.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// value is one JSON value and where it starts in the input.
type value struct {
	kind kind
	off  int // byte offset of the value's first byte
	// text is a string's decoded text, a number's literal as written, or
	// "true" or "false".
	text string
	// badText marks a string that held invalid UTF-8 or an unpaired
	// surrogate escape; each offending byte or escape is U+FFFD in text.
	badText bool
	elems   []*value // array elements
	members []member // object members in document order, repeats included
}

// member is one name/value pair of an object.
type member struct {
	name    string
	off     int  // byte offset of the name's opening quote
	badName bool // like value.badText, for the name
	value   *value
}

// syntaxError is invalid JSON at a byte offset, or with limit set, JSON
// that exceeds what the reader accepts.
type syntaxError struct {
	off   int
	msg   string
	limit bool
}

func (e *syntaxError) Error() string { return e.msg }

var byteOrderMark = []byte("\uFEFF")

// readJSON parses data as exactly one JSON value, allowing whitespace around
// it and at most maxDepth levels of arrays and objects.
func readJSON(data []byte) (*value, *syntaxError) {
	if bytes.HasPrefix(data, byteOrderMark) {
		return nil, &syntaxError{off: 0, msg: "the input starts with a byte order mark (U+FEFF): save it as UTF-8 without one"}
	}
	r := &reader{data: data}
	r.skipSpace()
	if r.pos == len(data) {
		return nil, r.errorf("empty input: want a JSON object")
	}
	v, err := r.value()
	if err != nil {
		return nil, err
	}
	r.skipSpace()
	if r.pos < len(data) {
		return nil, r.errorf("unexpected %s after the end of the JSON document", r.found())
	}
	return v, nil
}

type reader struct {
	data   []byte
	pos    int
	depth  int
	values int
}

func (r *reader) errorf(format string, args ...any) *syntaxError {
	return &syntaxError{off: r.pos, msg: fmt.Sprintf(format, args...)}
}

// found describes the input at the current position, for error messages.
func (r *reader) found() string {
	if r.pos >= len(r.data) {
		return "end of input"
	}
	c, size := utf8.DecodeRune(r.data[r.pos:])
	if c == utf8.RuneError && size == 1 {
		return fmt.Sprintf("byte 0x%02x", r.data[r.pos])
	}
	return fmt.Sprintf("%q", c)
}

// at reports whether the current byte is c.
func (r *reader) at(c byte) bool {
	return r.pos < len(r.data) && r.data[r.pos] == c
}

func (r *reader) atDigit() bool {
	return r.pos < len(r.data) && '0' <= r.data[r.pos] && r.data[r.pos] <= '9'
}

func (r *reader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *reader) value() (*value, *syntaxError) {
	if r.pos >= len(r.data) {
		return nil, r.errorf("unexpected end of input: want a value")
	}
	// Bounding the count bounds the memory a tree costs, whatever its shape.
	if r.values++; r.values > maxValues {
		e := r.errorf("more than %d values: a manifest has a few thousand at most", maxValues)
		e.limit = true
		return nil, e
	}
	switch c := r.data[r.pos]; {
	case c == '{':
		return r.object()
	case c == '[':
		return r.array()
	case c == '"':
		off := r.pos
		s, bad, err := r.string()
		if err != nil {
			return nil, err
		}
		return &value{kind: kindString, off: off, text: s, badText: bad}, nil
	case c == '-' || '0' <= c && c <= '9':
		return r.number()
	case c == 't':
		return r.literal("true", kindBool)
	case c == 'f':
		return r.literal("false", kindBool)
	case c == 'n':
		return r.literal("null", kindNull)
	default:
		return nil, r.errorf("unexpected %s: want a value", r.found())
	}
}

// enter counts one more level of nesting; the caller decrements r.depth
// when it leaves.
func (r *reader) enter() *syntaxError {
	r.depth++
	if r.depth > maxDepth {
		e := r.errorf("nested more than %d levels deep", maxDepth)
		e.limit = true
		return e
	}
	return nil
}

func (r *reader) object() (*value, *syntaxError) {
	v := &value{kind: kindObject, off: r.pos}
	if err := r.enter(); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	r.pos++ // '{'
	r.skipSpace()
	if r.at('}') {
		r.pos++
		return v, nil
	}
	for {
		if r.at('}') {
			return nil, r.errorf("unexpected '}' after ',': remove the trailing comma")
		}
		if !r.at('"') {
			return nil, r.errorf("unexpected %s: want a field name in double quotes", r.found())
		}
		off := r.pos
		name, bad, err := r.string()
		if err != nil {
			return nil, err
		}
		r.skipSpace()
		if !r.at(':') {
			return nil, r.errorf("unexpected %s after field name %s: want ':'", r.found(), quoteShort(name))
		}
		r.pos++
		r.skipSpace()
		elem, err := r.value()
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, member{name: name, off: off, badName: bad, value: elem})
		r.skipSpace()
		switch {
		case r.at(','):
			r.pos++
			r.skipSpace()
		case r.at('}'):
			r.pos++
			return v, nil
		default:
			return nil, r.errorf("unexpected %s after the value of %s: want ',' or '}'", r.found(), quoteShort(name))
		}
	}
}

func (r *reader) array() (*value, *syntaxError) {
	v := &value{kind: kindArray, off: r.pos}
	if err := r.enter(); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	r.pos++ // '['
	r.skipSpace()
	if r.at(']') {
		r.pos++
		return v, nil
	}
	for {
		if r.at(']') {
			return nil, r.errorf("unexpected ']' after ',': remove the trailing comma")
		}
		elem, err := r.value()
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, elem)
		r.skipSpace()
		switch {
		case r.at(','):
			r.pos++
			r.skipSpace()
		case r.at(']'):
			r.pos++
			return v, nil
		default:
			return nil, r.errorf("unexpected %s after an array element: want ',' or ']'", r.found())
		}
	}
}

func (r *reader) literal(word string, k kind) (*value, *syntaxError) {
	if !bytes.HasPrefix(r.data[r.pos:], []byte(word)) {
		return nil, r.errorf("invalid literal: want true, false, null, a number, a string, an array or an object")
	}
	v := &value{kind: k, off: r.pos, text: word}
	r.pos += len(word)
	return v, nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and keeps it as
// written.
func (r *reader) number() (*value, *syntaxError) {
	start := r.pos
	if r.at('-') {
		r.pos++
	}
	switch {
	case r.at('0'):
		r.pos++
	case r.atDigit():
		r.skipDigits()
	default:
		return nil, r.errorf("invalid number: want a digit after '-', found %s", r.found())
	}
	if r.at('.') {
		r.pos++
		if !r.atDigit() {
			return nil, r.errorf("invalid number: want a digit after '.', found %s", r.found())
		}
		r.skipDigits()
	}
	if r.at('e') || r.at('E') {
		r.pos++
		if r.at('+') || r.at('-') {
			r.pos++
		}
		if !r.atDigit() {
			return nil, r.errorf("invalid number: want a digit in the exponent, found %s", r.found())
		}
		r.skipDigits()
	}
	return &value{kind: kindNumber, off: start, text: string(r.data[start:r.pos])}, nil
}

func (r *reader) skipDigits() {
	for r.atDigit() {
		r.pos++
	}
}

// string reads a quoted string, decoding escapes. Invalid UTF-8 and unpaired
// surrogate escapes are not syntax errors here: they become U+FFFD and set
// bad, so that the caller can report them at the field they spoil.
func (r *reader) string() (s string, bad bool, err *syntaxError) {
	start := r.pos
	r.pos++ // opening quote
	var b []byte
	chunk := r.pos // start of the bytes not yet copied to b
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			if b == nil {
				s = string(r.data[chunk:r.pos])
			} else {
				s = string(append(b, r.data[chunk:r.pos]...))
			}
			r.pos++
			return s, bad, nil
		case c == '\\':
			b = append(b, r.data[chunk:r.pos]...)
			if b, bad, err = r.escape(b, bad); err != nil {
				return "", false, err
			}
			chunk = r.pos
		case c < 0x20:
			return "", false, r.errorf("control character %U in a string: write it as an escape such as \\n or \\u%04x", c, c)
		case c < utf8.RuneSelf:
			r.pos++
		default:
			rn, size := utf8.DecodeRune(r.data[r.pos:])
			if rn == utf8.RuneError && size == 1 {
				b = append(b, r.data[chunk:r.pos]...)
				b = utf8.AppendRune(b, utf8.RuneError)
				bad = true
				chunk = r.pos + 1
			}
			r.pos += size
		}
	}
	return "", false, &syntaxError{off: start, msg: "unterminated string: want a closing '\"'"}
}

// escape decodes the escape sequence at r.pos onto b.
func (r *reader) escape(b []byte, bad bool) ([]byte, bool, *syntaxError) {
	start := r.pos
	r.pos++ // backslash
	if r.pos >= len(r.data) {
		return nil, false, r.errorf("unexpected end of input in an escape sequence")
	}
	c := r.data[r.pos]
	r.pos++
	switch c {
	case '"', '\\', '/':
		return append(b, c), bad, nil
	case 'b':
		return append(b, '\b'), bad, nil
	case 'f':
		return append(b, '\f'), bad, nil
	case 'n':
		return append(b, '\n'), bad, nil
	case 'r':
		return append(b, '\r'), bad, nil
	case 't':
		return append(b, '\t'), bad, nil
	case 'u':
		c, ok := r.hex4(r.pos)
		if !ok {
			return nil, false, &syntaxError{off: start, msg: "invalid \\u escape: want four hexadecimal digits"}
		}
		r.pos += 4
		if utf16.IsSurrogate(c) {
			// Only a high surrogate followed at once by a low one is a
			// character; anything else is left for the next iteration.
			lo, ok := rune(0), false
			if c < 0xDC00 && r.at('\\') && r.pos+1 < len(r.data) && r.data[r.pos+1] == 'u' {
				lo, ok = r.hex4(r.pos + 2)
			}
			if ok && 0xDC00 <= lo && lo <= 0xDFFF {
				c = utf16.DecodeRune(c, lo)
				r.pos += 6
			} else {
				c, bad = utf8.RuneError, true
			}
		}
		return utf8.AppendRune(b, c), bad, nil
	default:
		r.pos = start
		return nil, false, r.errorf("invalid escape sequence \\%s: want one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX", printable(c))
	}
}

// hex4 decodes the four hexadecimal digits at off.
func (r *reader) hex4(off int) (rune, bool) {
	if off+4 > len(r.data) {
		return 0, false
	}
	var c rune
	for _, h := range r.data[off : off+4] {
		switch {
		case '0' <= h && h <= '9':
			h -= '0'
		case 'a' <= h && h <= 'f':
			h -= 'a' - 10
		case 'A' <= h && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		c = c<<4 | rune(h)
	}
	return c, true
}

func printable(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("(byte 0x%02x)", c)
	}
	return string(c)
}
