// Package manifest parses and validates snapcompose manifests: the JSON
// documents that name the sources of a composition, how their conflicts are
// resolved and the resource limits it must fit in.
//
// Validation is strict and complete. Unknown fields, repeated fields, trailing
// data and invalid UTF-8 are errors, and every problem in a document is
// reported at once, each located by a JSON pointer (RFC 6901), so that a user
// can fix them all in one pass.
package manifest

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// MaxBytes is the largest manifest accepted, in bytes.
const MaxBytes = 1 << 20

// Limits on what a manifest may contain. They keep plans readable and bound
// the work a single request can cause.
const (
	maxSources        = 64
	maxTags           = 32
	maxPriority       = 1_000_000
	maxNameLen        = 128  // characters
	maxDescriptionLen = 4096 // characters
	maxIDLen          = 128  // bytes; ids are ASCII
	maxHostLen        = 253  // bytes; the longest DNS name
	maxPathLen        = 4096 // bytes; Linux's PATH_MAX
	maxTagLen         = 64   // characters

	maxDepth    = 32     // nesting of arrays and objects; a manifest needs 4
	maxValues   = 50_000 // JSON values; a manifest at every limit has about 2,500
	maxProblems = 100    // problems listed before the rest are only counted
	maxQuoted   = 64     // characters of user text echoed in a message
)

// errorMessage is the summary of every error Parse returns for bad input.
const errorMessage = "invalid manifest"

var (
	manifestFields = []string{"name", "description", "sources", "conflict_resolution", "resource_limits"}
	sourceFields   = []string{"type", "id", "host", "path", "priority", "tags"}
	limitFields    = []string{"cpu", "memory", "disk"}
)

// Parse reads a manifest of at most MaxBytes from r and validates it.
//
// It returns a *domain.Error with code EINVALID listing every problem found
// when the manifest is invalid, and the reader's error, wrapped, when r
// fails.
func Parse(r io.Reader) (*domain.Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return ParseBytes(data)
}

// ParseBytes validates the manifest in b. It returns a *domain.Error with
// code EINVALID listing every problem found when the manifest is invalid.
func ParseBytes(b []byte) (*domain.Manifest, error) {
	if len(b) > MaxBytes {
		return nil, domain.Invalid(errorMessage, []domain.Problem{{
			Message: fmt.Sprintf("the manifest is larger than 1 MiB: want at most %d bytes", MaxBytes),
		}})
	}
	root, se := readJSON(b)
	if se != nil {
		line, col := position(b, se.off)
		format := "invalid JSON at line %d, column %d: %s"
		if se.limit {
			format = "the manifest is too complex at line %d, column %d: %s"
		}
		return nil, domain.Invalid(errorMessage, []domain.Problem{{Message: fmt.Sprintf(format, line, col, se.msg)}})
	}
	c := &checker{data: b, cutoff: -1}
	m := c.manifest(root)
	if len(c.problems) > 0 {
		return nil, domain.Invalid(errorMessage, c.report())
	}
	return m, nil
}

// position returns the 1-based line and column, in characters, of the byte
// at off.
func position(data []byte, off int) (line, col int) {
	before := data[:min(off, len(data))]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return bytes.Count(before, []byte{'\n'}) + 1, utf8.RuneCount(before[lineStart:]) + 1
}

// checker validates a JSON tree against the manifest schema, collecting
// every problem with the offset it was found at.
type checker struct {
	data     []byte
	problems []located
	// Once more than maxProblems are known, only the first maxProblems in
	// document order are kept; a problem at or after cutoff would not be
	// among them, so it is only counted. This keeps hostile input with a
	// problem in every byte from costing a formatted message each.
	cutoff  int // -1 until problems are dropped
	dropped int
}

type located struct {
	off int
	domain.Problem
}

func (c *checker) addf(off int, where, format string, args ...any) {
	c.add(off, where, func() string { return fmt.Sprintf(format, args...) })
}

// add records a problem at off, calling message only if the problem is
// kept.
func (c *checker) add(off int, where string, message func() string) {
	if c.cutoff >= 0 && off >= c.cutoff {
		c.dropped++
		return
	}
	c.problems = append(c.problems, located{off, domain.Problem{Where: where, Message: message()}})
	if len(c.problems) >= 2*maxProblems {
		c.trim()
	}
}

// trim sorts the problems into document order and keeps the first
// maxProblems. Problems at one offset keep the order they were found in.
func (c *checker) trim() {
	slices.SortStableFunc(c.problems, func(a, b located) int { return a.off - b.off })
	if len(c.problems) > maxProblems {
		c.dropped += len(c.problems) - maxProblems
		c.problems = c.problems[:maxProblems]
		// A later problem at the last kept offset would sort after it, so it
		// would be dropped too.
		c.cutoff = c.problems[maxProblems-1].off
	}
}

// report returns the first maxProblems problems in document order and a
// count of the rest.
func (c *checker) report() []domain.Problem {
	c.trim()
	out := make([]domain.Problem, len(c.problems), len(c.problems)+1)
	for i, p := range c.problems {
		out[i] = p.Problem
	}
	if c.dropped > 0 {
		out = append(out, domain.Problem{Message: fmt.Sprintf("... and %d more problems", c.dropped)})
	}
	return out
}

func (c *checker) manifest(root *value) *domain.Manifest {
	if root.kind != kindObject {
		c.addf(root.off, "", "the manifest must be a JSON object, got %s", describe(root))
		return nil
	}
	f := c.fields(root, "", manifestFields)
	m := &domain.Manifest{}
	if v := c.require(f, root, "", "name", "a non-empty string"); v != nil {
		m.Name = c.name(v, "/name")
	}
	if v := f["description"]; v != nil {
		m.Description = c.description(v, "/description")
	}
	if v := c.require(f, root, "", "sources", fmt.Sprintf("an array of 1 to %d sources", maxSources)); v != nil {
		m.Sources = c.sources(v, "/sources")
	}
	if v := c.require(f, root, "", "conflict_resolution", "one of "+strategyList()); v != nil {
		m.ConflictResolution = c.strategy(v, "/conflict_resolution")
	}
	if v := c.require(f, root, "", "resource_limits", "an object with cpu, memory and disk"); v != nil {
		m.ResourceLimits = c.limits(v, "/resource_limits")
	}
	return m
}

// fields returns obj's members by name, reporting names not in known and
// names that appear more than once (the first occurrence is kept).
func (c *checker) fields(obj *value, where string, known []string) map[string]*value {
	f := make(map[string]*value, len(obj.members))
	for _, mb := range obj.members {
		if mb.badName || !slices.Contains(known, mb.name) {
			c.unknownField(where, mb, known)
			continue
		}
		if _, seen := f[mb.name]; seen {
			// Both occurrences have the same pointer, so say which is meant.
			c.add(mb.off, where+"/"+mb.name, func() string {
				line, col := position(c.data, mb.off)
				return fmt.Sprintf("duplicate field %q at line %d, column %d: each field may appear only once", mb.name, line, col)
			})
			continue
		}
		f[mb.name] = mb.value
	}
	return f
}

func (c *checker) unknownField(where string, mb member, known []string) {
	want := "want one of " + strings.Join(known, ", ")
	// A name that makes a poor pointer is reported at its object instead.
	if mb.badName {
		c.addf(mb.off, where, "unknown field %s, a name that is not valid UTF-8: %s", quoteShort(mb.name), want)
		return
	}
	if utf8.RuneCountInString(mb.name) > maxQuoted || strings.IndexFunc(mb.name, unicode.IsControl) >= 0 {
		c.addf(mb.off, where, "unknown field %s: %s", quoteShort(mb.name), want)
		return
	}
	c.addf(mb.off, where+"/"+pointerToken(mb.name), "unknown field %q: %s", mb.name, want)
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// pointerToken escapes a field name for a JSON pointer (RFC 6901).
func pointerToken(name string) string { return pointerEscaper.Replace(name) }

// require returns the field name of obj, reporting it at the object when it
// is missing.
func (c *checker) require(f map[string]*value, obj *value, where, name, want string) *value {
	v := f[name]
	if v == nil {
		c.addf(obj.off, where, "missing required field %q: want %s", name, want)
	}
	return v
}

// text returns v's string, reporting a value of another type or a string
// that is not valid UTF-8.
func (c *checker) text(v *value, where, want string) (string, bool) {
	if v.kind != kindString {
		c.addf(v.off, where, "must be %s, got %s", want, describe(v))
		return "", false
	}
	if v.badText {
		c.addf(v.off, where, "must be valid UTF-8 text: found an invalid byte sequence or an unpaired surrogate escape")
		return "", false
	}
	return v.text, true
}

func (c *checker) name(v *value, where string) string {
	s, ok := c.text(v, where, "a string")
	if !ok {
		return ""
	}
	switch n := utf8.RuneCountInString(s); {
	case strings.TrimSpace(s) == "":
		c.addf(v.off, where, "must not be empty or blank")
	case n > maxNameLen:
		c.addf(v.off, where, "must be at most %d characters, got %d", maxNameLen, n)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		c.addf(v.off, where, "must not contain control characters such as newlines or tabs")
	}
	return s
}

func (c *checker) description(v *value, where string) string {
	s, ok := c.text(v, where, "a string")
	if !ok {
		return ""
	}
	switch n := utf8.RuneCountInString(s); {
	case n > maxDescriptionLen:
		c.addf(v.off, where, "must be at most %d characters, got %d", maxDescriptionLen, n)
	case strings.IndexFunc(s, isControlNotSpace) >= 0:
		c.addf(v.off, where, "must not contain control characters other than tab and newline")
	}
	return s
}

func isControlNotSpace(r rune) bool {
	return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
}

func strategyList() string {
	names := make([]string, len(domain.Strategies))
	for i, s := range domain.Strategies {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func (c *checker) strategy(v *value, where string) domain.Strategy {
	s, ok := c.text(v, where, "a string, one of "+strategyList())
	if !ok {
		return ""
	}
	if slices.Contains(domain.Strategies, domain.Strategy(s)) {
		return domain.Strategy(s)
	}
	hint := ""
	if up := strings.ToUpper(s); up != s && slices.Contains(domain.Strategies, domain.Strategy(up)) {
		hint = fmt.Sprintf(" (names are upper case: %s)", up)
	}
	c.addf(v.off, where, "unknown strategy %s: want one of %s%s", quoteShort(s), strategyList(), hint)
	return ""
}

func (c *checker) limits(v *value, where string) domain.Resources {
	if v.kind != kindObject {
		c.addf(v.off, where, "must be an object with cpu, memory and disk, got %s", describe(v))
		return domain.Resources{}
	}
	f := c.fields(v, where, limitFields)
	return domain.Resources{
		CPUMillicores: c.quantity(f, v, where, "cpu", `"8 cores"`, quantity.ParseCPU),
		MemoryBytes:   c.quantity(f, v, where, "memory", `"32GB"`, quantity.ParseBytes),
		DiskBytes:     c.quantity(f, v, where, "disk", `"500GB"`, quantity.ParseBytes),
	}
}

// quantity parses the required limit name of obj with parse; example shows
// the accepted form.
func (c *checker) quantity(f map[string]*value, obj *value, where, name, example string, parse func(string) (int64, error)) int64 {
	want := "a string such as " + example
	v := c.require(f, obj, where, name, want)
	if v == nil {
		return 0
	}
	where += "/" + name
	if v.kind == kindNumber {
		// A bare number is the likeliest slip; say how to write it.
		switch _, err := parse(v.text); {
		case err == nil:
			c.addf(v.off, where, "must be %s, got number %s: quote it, as in %q", want, v.text, v.text)
		case name != "cpu":
			c.addf(v.off, where, "must be %s, got number %s: quote it and give a unit", want, shortText(v.text))
		default:
			c.addf(v.off, where, "must be %s, got number %s", want, shortText(v.text))
		}
		return 0
	}
	s, ok := c.text(v, where, want)
	if !ok {
		return 0
	}
	n, err := parse(s)
	switch {
	case err != nil:
		c.addf(v.off, where, "%v", err)
	case n <= 0:
		c.addf(v.off, where, "must be greater than zero, got %s", quoteShort(s))
	}
	return n
}

func (c *checker) sources(v *value, where string) []domain.Source {
	if v.kind != kindArray {
		c.addf(v.off, where, "must be an array of 1 to %d sources, got %s", maxSources, describe(v))
		return nil
	}
	switch n := len(v.elems); {
	case n == 0:
		c.addf(v.off, where, "must list at least one source")
	case n > maxSources:
		c.addf(v.off, where, "must list at most %d sources, got %d", maxSources, n)
	}
	// Every source is checked, but a list too long to be valid is not kept.
	var sources []domain.Source
	if len(v.elems) <= maxSources {
		sources = make([]domain.Source, 0, len(v.elems))
	}
	first := make(map[domain.SourceRef]string, min(len(v.elems), maxSources)) // ref -> pointer of its first source
	for i, e := range v.elems {
		w := where + "/" + strconv.Itoa(i)
		src, named := c.source(e, w, i)
		if named {
			ref := src.Ref()
			if at, dup := first[ref]; dup {
				c.addf(e.off, w, "duplicate source %s: the same source is already listed at %s", quoteShort(string(ref)), at)
			} else {
				first[ref] = w
			}
		}
		if sources != nil {
			sources = append(sources, src)
		}
	}
	return sources
}

// source validates one source. named reports whether its type and the fields
// its ref is made of are valid, so that the ref identifies it.
func (c *checker) source(v *value, where string, index int) (src domain.Source, named bool) {
	src.Index = index
	if v.kind != kindObject {
		c.addf(v.off, where, "must be an object describing a template or live source, got %s", describe(v))
		return src, false
	}
	f := c.fields(v, where, sourceFields)
	named = true
	if tv := c.require(f, v, where, "type", "template or live"); tv != nil {
		if s, ok := c.text(tv, where+"/type", "a string, template or live"); ok {
			switch t := domain.SourceType(s); t {
			case domain.TemplateSource, domain.LiveSource:
				src.Type = t
			default:
				c.addf(tv.off, where+"/type", "unknown source type %s: want template or live", quoteShort(s))
			}
		}
	}
	id, host, dir := f["id"], f["host"], f["path"]
	switch src.Type {
	case domain.TemplateSource:
		named = c.require(f, v, where, "id", "a template id such as \"template_a\"") != nil
		host = c.forbid(host, where+"/host", "a template source: host and path are for live sources")
		dir = c.forbid(dir, where+"/path", "a template source: host and path are for live sources")
	case domain.LiveSource:
		named = c.require(f, v, where, "host", "a host name such as \"production_server_1\"") != nil
		named = c.require(f, v, where, "path", "an absolute path such as \"/var/app\"") != nil && named
		id = c.forbid(id, where+"/id", "a live source: id is for template sources")
	default:
		// Without a valid type the other fields can still be checked for
		// form, though not for whether they belong.
		named = false
	}
	var ok bool
	if id != nil {
		src.ID, ok = c.templateID(id, where+"/id")
		named = named && ok
	}
	if host != nil {
		src.Host, ok = c.host(host, where+"/host")
		named = named && ok
	}
	if dir != nil {
		src.Path, ok = c.livePath(dir, where+"/path")
		named = named && ok
	}
	if pv := f["priority"]; pv != nil {
		src.Priority = c.priority(pv, where+"/priority")
	}
	if tv := f["tags"]; tv != nil {
		src.Tags = c.tags(tv, where+"/tags")
	}
	return src, named
}

// forbid reports v, a field not allowed in the kind of source described by
// what, and returns nil so that its form is not checked too.
func (c *checker) forbid(v *value, where, what string) *value {
	if v != nil {
		c.addf(v.off, where, "not allowed for %s", what)
	}
	return nil
}

func (c *checker) templateID(v *value, where string) (string, bool) {
	s, ok := c.text(v, where, "a string")
	if !ok {
		return "", false
	}
	if !validName(s, maxIDLen, isIDByte) {
		c.addf(v.off, where, "invalid template id %s: want 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", quoteShort(s), maxIDLen)
		return s, false
	}
	return s, true
}

func (c *checker) host(v *value, where string) (string, bool) {
	s, ok := c.text(v, where, "a string")
	if !ok {
		return "", false
	}
	if !validName(s, maxHostLen, isHostByte) {
		c.addf(v.off, where, "invalid host %s: want 1 to %d letters, digits, '-', '_' or '.', starting with a letter or digit, as named in the hosts file", quoteShort(s), maxHostLen)
		return s, false
	}
	return s, true
}

// validName reports whether s is 1 to limit bytes that all satisfy allowed and
// starts with an ASCII letter or digit.
func validName(s string, limit int, allowed func(byte) bool) bool {
	if s == "" || len(s) > limit || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isIDByte(c byte) bool   { return isAlnum(c) || c == '.' || c == '_' || c == '-' }
func isHostByte(c byte) bool { return isAlnum(c) || c == '-' || c == '_' || c == '.' }

func (c *checker) livePath(v *value, where string) (string, bool) {
	s, ok := c.text(v, where, "a string")
	if !ok {
		return "", false
	}
	problem := ""
	switch {
	case len(s) > maxPathLen:
		problem = fmt.Sprintf("must be at most %d bytes, got %d", maxPathLen, len(s))
	case strings.IndexByte(s, 0) >= 0:
		problem = "must not contain NUL characters"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		problem = "must not contain control characters"
	case !strings.HasPrefix(s, "/"):
		problem = fmt.Sprintf("must be an absolute path starting with \"/\", got %s", quoteShort(s))
	case slices.Contains(strings.Split(s, "/"), ".."):
		problem = fmt.Sprintf(`must not contain "..", got %s`, quoteShort(s))
	case path.Clean(s) != s:
		problem = fmt.Sprintf("must be a clean path, without repeated or trailing slashes or \".\" elements: want %s, got %s", quoteShort(path.Clean(s)), quoteShort(s))
	}
	if problem != "" {
		c.addf(v.off, where, "%s", problem)
		return s, false
	}
	return s, true
}

func (c *checker) priority(v *value, where string) int {
	// The reader guarantees JSON number syntax, so a literal without a
	// fraction or an exponent is an integer.
	if v.kind != kindNumber || strings.ContainsAny(v.text, ".eE") {
		c.addf(v.off, where, "must be an integer, got %s", describe(v))
		return 0
	}
	n, err := strconv.ParseInt(v.text, 10, 64)
	if err != nil || n < -maxPriority || n > maxPriority {
		c.addf(v.off, where, "must be an integer from %d to %d, got %s", -maxPriority, maxPriority, shortText(v.text))
		return 0
	}
	return int(n)
}

func (c *checker) tags(v *value, where string) []string {
	if v.kind != kindArray {
		c.addf(v.off, where, "must be an array of at most %d strings, got %s", maxTags, describe(v))
		return nil
	}
	if n := len(v.elems); n > maxTags {
		c.addf(v.off, where, "must have at most %d tags, got %d", maxTags, n)
	}
	var tags []string
	first := make(map[string]string, len(v.elems)) // tag -> pointer of its first use
	for i, e := range v.elems {
		w := where + "/" + strconv.Itoa(i)
		s, ok := c.text(e, w, "a string")
		if !ok {
			continue
		}
		switch n := utf8.RuneCountInString(s); {
		case n == 0:
			c.addf(e.off, w, "must not be empty")
		case n > maxTagLen:
			c.addf(e.off, w, "must be at most %d characters, got %d", maxTagLen, n)
		case strings.IndexFunc(s, unicode.IsControl) >= 0:
			c.addf(e.off, w, "must not contain control characters")
		default:
			if at, dup := first[s]; dup {
				c.addf(e.off, w, "duplicate tag %s: already listed at %s", quoteShort(s), at)
			} else {
				first[s] = w
			}
		}
		tags = append(tags, s)
	}
	return tags
}

// describe names v's type, and its value when short, for "got ..." messages.
func describe(v *value) string {
	switch v.kind {
	case kindString:
		return "string " + quoteShort(v.text)
	case kindNumber:
		return "number " + shortText(v.text)
	case kindBool:
		return "boolean " + v.text
	default:
		return v.kind.String()
	}
}

// quoteShort quotes s for a message, shortened to maxQuoted characters.
func quoteShort(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(shortText(s))
}

// shortText shortens s to maxQuoted characters, marking the cut.
func shortText(s string) string {
	i, n := 0, 0
	for i < len(s) && n < maxQuoted {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	if i == len(s) {
		return s
	}
	return s[:i] + "..."
}
