package snapagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// MaxPathBytes is the longest path the agent accepts, Linux's PATH_MAX.
const MaxPathBytes = 4096

// ParseCaptureRequest reads a capture request strictly: a JSON object in
// valid UTF-8 with exactly one field, "path" (case-sensitive, once, a
// string), and nothing after it. The path must pass the same checks as every
// path a client sends (see validatePath). Errors are EINVALID.
func ParseCaptureRequest(body []byte) (agentapi.CaptureRequest, error) {
	var req agentapi.CaptureRequest
	if !utf8.Valid(body) {
		return req, domain.Errorf(domain.EINVALID, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	bad := func(format string, args ...any) (agentapi.CaptureRequest, error) {
		return agentapi.CaptureRequest{}, domain.Errorf(domain.EINVALID, "capture request: "+format, args...)
	}
	tok, err := dec.Token()
	if err != nil {
		return bad("the body is not JSON: %v", jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return bad(`the body must be a JSON object like {"path": "/var/app"}`)
	}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("malformed JSON: %v", jsonErr(err))
		}
		key, _ := tok.(string)
		if key != "path" {
			return bad(`unknown field %s: the only field is "path"`, quote(key))
		}
		if seen {
			return bad(`the field "path" is given twice`)
		}
		seen = true
		tok, err = dec.Token()
		if err != nil {
			return bad("malformed JSON: %v", jsonErr(err))
		}
		s, ok := tok.(string)
		if !ok {
			return bad(`"path" must be a string`)
		}
		req.Path = s
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return bad("malformed JSON: %v", jsonErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("unexpected data after the JSON object")
	}
	if !seen {
		return bad(`the field "path" is required`)
	}
	if err := validatePath(req.Path); err != nil {
		return agentapi.CaptureRequest{}, err
	}
	return req, nil
}

// validatePath checks a path a client sent before anything is looked up:
// present, absolute, no NUL, no ".." element, at most MaxPathBytes.
func validatePath(p string) error {
	switch {
	case p == "":
		return domain.Errorf(domain.EINVALID, "path is required")
	case len(p) > MaxPathBytes:
		return domain.Errorf(domain.EINVALID, "path is %d bytes long; the limit is %d", len(p), MaxPathBytes)
	case strings.IndexByte(p, 0) >= 0:
		return domain.Errorf(domain.EINVALID, "path %s contains a NUL byte", quote(p))
	case !strings.HasPrefix(p, "/"):
		return domain.Errorf(domain.EINVALID, "path %s is not absolute", quote(p))
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return domain.Errorf(domain.EINVALID, `path %s contains "..": name the directory itself`, quote(p))
		}
	}
	return nil
}

// quote quotes s for a message, shortened when long.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// jsonErr describes a JSON error without encoding/json's "json: " prefix.
func jsonErr(err error) string {
	if errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
