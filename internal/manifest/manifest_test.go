package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// baseFields is a small valid manifest, in the order doc writes it.
var baseFields = [][2]string{
	{"name", `"Test"`},
	{"sources", `[{"type": "template", "id": "template_a"}]`},
	{"conflict_resolution", `"FIRST_WIN"`},
	{"resource_limits", `{"cpu": "8 cores", "memory": "32GB", "disk": "500GB"}`},
}

// doc returns a valid manifest changed by pairs of a key and a raw JSON
// value, both written as given: a key of baseFields gets the new value, or is
// left out when the value is "", and any other key is added at the end.
func doc(pairs ...string) string {
	if len(pairs)%2 != 0 {
		panic("doc: odd number of arguments")
	}
	override := map[string]string{}
	var extra []string
	for i := 0; i < len(pairs); i += 2 {
		override[pairs[i]] = pairs[i+1]
		extra = append(extra, pairs[i])
	}
	var members []string
	for _, f := range baseFields {
		raw, ok := override[f[0]]
		if !ok {
			raw = f[1]
		}
		delete(override, f[0])
		if raw != "" {
			members = append(members, `"`+f[0]+`": `+raw)
		}
	}
	for _, k := range extra {
		if raw, ok := override[k]; ok {
			members = append(members, `"`+k+`": `+raw)
		}
	}
	return "{" + strings.Join(members, ", ") + "}"
}

// withSources returns a valid manifest with the given sources, each raw JSON.
func withSources(sources ...string) string {
	return doc("sources", "["+strings.Join(sources, ", ")+"]")
}

// withTemplate returns a valid manifest whose one source is a template source
// with the extra raw members given, such as `"priority": 1`.
func withTemplate(members string) string {
	return withSources(`{"type": "template", "id": "template_a", ` + members + `}`)
}

func withLimits(members string) string {
	return doc("resource_limits", "{"+members+"}")
}

// q returns s as a JSON string literal.
func q(s string) string { return fmt.Sprintf("%q", s) }

type wantProblem struct {
	where   string // exact
	message string // a fragment of the message
}

type problemCase struct {
	name  string
	input string
	want  []wantProblem // in order
}

func one(where, message string) []wantProblem { return []wantProblem{{where, message}} }

// tagList returns a JSON array of n distinct tags.
func tagList(n int) string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf(`"t%d"`, i)
	}
	return "[" + strings.Join(tags, ", ") + "]"
}

// nested returns n nested empty arrays.
func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// problemCases are invalid manifests and the problems each must report.
var problemCases = []problemCase{
	// JSON syntax.
	{"empty input", "", one("", "invalid JSON at line 1, column 1: empty input")},
	{"only whitespace", " \n ", one("", "line 2, column 2: empty input")},
	{"missing value", `{"name": }`, one("", "invalid JSON at line 1, column 10: unexpected '}': want a value")},
	{"line and column", "{\n  \"name\": \"x\",\n  oops\n}", one("", "line 3, column 3: unexpected 'o': want a field name in double quotes")},
	{"column counts characters", "{\"name\": \"héllo\" x}", one("", "line 1, column 18:")},
	{"trailing comma in object", `{"name": "x",}`, one("", "remove the trailing comma")},
	{"trailing comma in array", `{"sources": [1,]}`, one("", "remove the trailing comma")},
	{"trailing data", doc() + " {}", one("", "unexpected '{' after the end of the JSON document")},
	{"trailing garbage", doc() + "x", one("", "after the end of the JSON document")},
	{"unterminated string", `{"name": "abc`, one("", "line 1, column 10: unterminated string")},
	{"unterminated object", `{"name": "abc"`, one("", "unexpected end of input after the value of \"name\"")},
	{"raw control character in string", "{\"name\": \"a\tb\"}", one("", "control character U+0009 in a string")},
	{"invalid escape", `{"name": "a\qb"}`, one("", `invalid escape sequence \q`)},
	{"short unicode escape", `{"name": "\u12"}`, one("", "invalid \\u escape: want four hexadecimal digits")},
	{"byte order mark", "\uFEFF" + doc(), one("", "line 1, column 1: the input starts with a byte order mark")},
	{"invalid literal", `{"name": nul}`, one("", "invalid literal")},
	{"single quotes", `{'name': "x"}`, one("", "want a field name in double quotes")},
	{"missing colon", `{"name" "x"}`, one("", `after field name "name": want ':'`)},
	{"leading zero", `{"sources": [01]}`, one("", "unexpected '1' after an array element")},
	{"bare minus", `{"sources": [-]}`, one("", "invalid number: want a digit after '-'")},
	{"fraction without digits", `{"sources": [1.]}`, one("", "invalid number: want a digit after '.'")},
	{"exponent without digits", `{"sources": [1e]}`, one("", "invalid number: want a digit in the exponent")},
	{"invalid UTF-8 outside strings", "{\xff}", one("", "unexpected byte 0xff")},
	{"nested too deep", `{"x": ` + nested(40) + `}`, one("", "the manifest is too complex at line 1, column 38: nested more than 32 levels deep")},
	{"top level array", `[]`, one("", "the manifest must be a JSON object, got array")},
	{"top level null", `null`, one("", "must be a JSON object, got null")},
	{"top level string", `"manifest"`, one("", `must be a JSON object, got string "manifest"`)},
	{"too large", doc() + strings.Repeat(" ", MaxBytes), one("", "larger than 1 MiB")},
	{"too many values", doc("sources", "["+strings.Repeat("1,", maxValues)+"1]"), one("", "the manifest is too complex at line 1, column 100024: more than 50000 values")},

	// Fields in general.
	{"unknown field", doc("prio", "1"), one("/prio", `unknown field "prio": want one of name, description, sources, conflict_resolution, resource_limits`)},
	{"unknown field escaped in pointer", doc("a/b~c", "1"), one("/a~1b~0c", `unknown field "a/b~c"`)},
	{"unknown field with a control character", doc(`a\nb`, "1"), one("", `unknown field "a\nb"`)},
	{"unknown field not UTF-8", doc("a\xffb", "1"), one("", "not valid UTF-8")},
	{"unknown long field", doc(strings.Repeat("k", 100), "1"), one("", `unknown field "kkkk`)},
	{"unknown field at depth limit", doc("x", nested(31)), one("/x", `unknown field "x"`)},
	{"duplicate field", doc("name", `"a", "name": "b"`), one("/name", `duplicate field "name" at line 1, column 15`)},
	{"duplicate field of another type", doc("name", `"a", "name": 1`), one("/name", `duplicate field "name"`)},

	// name.
	{"name missing", doc("name", ""), one("", `missing required field "name": want a non-empty string`)},
	{"name number", doc("name", "3"), one("/name", "must be a string, got number 3")},
	{"name null", doc("name", "null"), one("/name", "must be a string, got null")},
	{"name empty", doc("name", `""`), one("/name", "must not be empty")},
	{"name blank", doc("name", `"  "`), one("/name", "must not be empty or blank")},
	{"name too long", doc("name", q(strings.Repeat("n", 129))), one("/name", "must be at most 128 characters, got 129")},
	{"name with newline", doc("name", `"a\nb"`), one("/name", "must not contain control characters")},
	{"name with NUL", doc("name", `"a\u0000b"`), one("/name", "must not contain control characters")},
	{"name invalid UTF-8", doc("name", "\"a\xffb\""), one("/name", "must be valid UTF-8")},
	{"name encoded surrogate", doc("name", "\"\xed\xa0\x80\""), one("/name", "must be valid UTF-8")},
	{"name lone high surrogate", doc("name", `"\ud800"`), one("/name", "must be valid UTF-8")},
	{"name lone low surrogate", doc("name", `"\udc00x"`), one("/name", "must be valid UTF-8")},
	{"name high surrogate before a letter", doc("name", `"\ud800\u0041"`), one("/name", "must be valid UTF-8")},
	{"name reversed surrogates", doc("name", `"\ude00\ud83d"`), one("/name", "must be valid UTF-8")},

	// description.
	{"description number", doc("description", "1"), one("/description", "must be a string, got number 1")},
	{"description too long", doc("description", q(strings.Repeat("d", 4097))), one("/description", "must be at most 4096 characters, got 4097")},
	{"description with NUL", doc("description", `"a\u0000"`), one("/description", "control characters other than tab and newline")},
	{"description null", doc("description", "null"), one("/description", "must be a string, got null")},

	// sources.
	{"sources missing", doc("sources", ""), one("", `missing required field "sources": want an array of 1 to 64 sources`)},
	{"sources object", doc("sources", "{}"), one("/sources", "must be an array of 1 to 64 sources, got object")},
	{"sources empty", doc("sources", "[]"), one("/sources", "must list at least one source")},
	{"sources too many", withSources(slices.Repeat([]string{`{"type": "template", "id": "x"}`}, 65)...), func() []wantProblem {
		want := one("/sources", "must list at most 64 sources, got 65")
		for i := 1; i < 65; i++ {
			want = append(want, wantProblem{fmt.Sprintf("/sources/%d", i), `duplicate source "template:x"`})
		}
		return want
	}()},
	{"source not an object", withSources(`"template_a"`), one("/sources/0", `must be an object describing a template or live source, got string "template_a"`)},
	{"source unknown field", withTemplate(`"prio": 1`), one("/sources/0/prio", `unknown field "prio": want one of type, id, host, path, priority, tags`)},
	{"source duplicate field", withTemplate(`"id": "b"`), one("/sources/0/id", `duplicate field "id"`)},
	{"source type missing", withSources(`{"id": "a"}`), one("/sources/0", `missing required field "type": want template or live`)},
	{"source type unknown", withSources(`{"type": "x", "id": "a"}`), one("/sources/0/type", `unknown source type "x": want template or live`)},
	{"source type capitalised", withSources(`{"type": "Template", "id": "a"}`), one("/sources/0/type", `unknown source type "Template"`)},
	{"source type number", withSources(`{"type": 1, "id": "a"}`), one("/sources/0/type", "must be a string, template or live, got number 1")},
	{"source type unknown still checks forms", withSources(`{"type": "x", "id": "-a", "path": "rel"}`), []wantProblem{
		{"/sources/0/type", "unknown source type"},
		{"/sources/0/id", "invalid template id"},
		{"/sources/0/path", "must be an absolute path"},
	}},

	// template sources.
	{"template id missing", withSources(`{"type": "template"}`), one("/sources/0", `missing required field "id": want a template id`)},
	{"template with host", withTemplate(`"host": "h"`), one("/sources/0/host", "not allowed for a template source")},
	{"template with path", withTemplate(`"path": "/var/app"`), one("/sources/0/path", "not allowed for a template source")},
	{"template id number", withSources(`{"type": "template", "id": 7}`), one("/sources/0/id", "must be a string, got number 7")},
	{"template id empty", withSources(`{"type": "template", "id": ""}`), one("/sources/0/id", `invalid template id "": want 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit`)},
	{"template id leading dash", withSources(`{"type": "template", "id": "-abc"}`), one("/sources/0/id", `invalid template id "-abc"`)},
	{"template id leading dot", withSources(`{"type": "template", "id": ".abc"}`), one("/sources/0/id", `invalid template id ".abc"`)},
	{"template id leading underscore", withSources(`{"type": "template", "id": "_abc"}`), one("/sources/0/id", `invalid template id "_abc"`)},
	{"template id space", withSources(`{"type": "template", "id": "a b"}`), one("/sources/0/id", `invalid template id "a b"`)},
	{"template id slash", withSources(`{"type": "template", "id": "a/b"}`), one("/sources/0/id", `invalid template id "a/b"`)},
	{"template id non-ASCII", withSources(`{"type": "template", "id": "café"}`), one("/sources/0/id", `invalid template id "café"`)},
	{"template id too long", withSources(`{"type": "template", "id": "` + strings.Repeat("i", 129) + `"}`), one("/sources/0/id", "invalid template id")},

	// live sources.
	{"live host missing", withSources(`{"type": "live", "path": "/var/app"}`), one("/sources/0", `missing required field "host"`)},
	{"live path missing", withSources(`{"type": "live", "host": "h"}`), one("/sources/0", `missing required field "path": want an absolute path`)},
	{"live host and path missing", withSources(`{"type": "live"}`), []wantProblem{
		{"/sources/0", `missing required field "host"`},
		{"/sources/0", `missing required field "path"`},
	}},
	{"live with id", withSources(`{"type": "live", "id": "a", "host": "h", "path": "/p"}`), one("/sources/0/id", "not allowed for a live source")},
	{"live host empty", withSources(`{"type": "live", "host": "", "path": "/p"}`), one("/sources/0/host", `invalid host "": want 1 to 253 letters, digits, '-', '_' or '.', starting with a letter or digit`)},
	{"live host space", withSources(`{"type": "live", "host": "bad host", "path": "/p"}`), one("/sources/0/host", `invalid host "bad host"`)},
	{"live host port", withSources(`{"type": "live", "host": "host:22", "path": "/p"}`), one("/sources/0/host", `invalid host "host:22"`)},
	{"live host leading dash", withSources(`{"type": "live", "host": "-h", "path": "/p"}`), one("/sources/0/host", `invalid host "-h"`)},
	{"live host too long", withSources(`{"type": "live", "host": "` + strings.Repeat("h", 254) + `", "path": "/p"}`), one("/sources/0/host", "invalid host")},
	{"live host null", withSources(`{"type": "live", "host": null, "path": "/p"}`), one("/sources/0/host", "must be a string, got null")},
	{"live path relative", withSources(`{"type": "live", "host": "h", "path": "var/app"}`), one("/sources/0/path", `must be an absolute path starting with "/", got "var/app"`)},
	{"live path empty", withSources(`{"type": "live", "host": "h", "path": ""}`), one("/sources/0/path", "must be an absolute path")},
	{"live path dot dot", withSources(`{"type": "live", "host": "h", "path": "/var/../etc"}`), one("/sources/0/path", `must not contain ".."`)},
	{"live path dot dot at root", withSources(`{"type": "live", "host": "h", "path": "/.."}`), one("/sources/0/path", `must not contain ".."`)},
	{"live path trailing slash", withSources(`{"type": "live", "host": "h", "path": "/var/app/"}`), one("/sources/0/path", `must be a clean path, without repeated or trailing slashes or "." elements: want "/var/app", got "/var/app/"`)},
	{"live path double slash", withSources(`{"type": "live", "host": "h", "path": "/var//app"}`), one("/sources/0/path", `want "/var/app"`)},
	{"live path dot", withSources(`{"type": "live", "host": "h", "path": "/var/./app"}`), one("/sources/0/path", `want "/var/app"`)},
	{"live path NUL", withSources(`{"type": "live", "host": "h", "path": "/var\u0000app"}`), one("/sources/0/path", "must not contain NUL")},
	{"live path newline", withSources(`{"type": "live", "host": "h", "path": "/var\napp"}`), one("/sources/0/path", "must not contain control characters")},
	{"live path too long", withSources(`{"type": "live", "host": "h", "path": "/` + strings.Repeat("p", 4096) + `"}`), one("/sources/0/path", "must be at most 4096 bytes, got 4097")},
	{"live path number", withSources(`{"type": "live", "host": "h", "path": 1}`), one("/sources/0/path", "must be a string, got number 1")},
	{"live path invalid UTF-8", withSources("{\"type\": \"live\", \"host\": \"h\", \"path\": \"/\xc3\"}"), one("/sources/0/path", "must be valid UTF-8")},

	// priority.
	{"priority fraction", withTemplate(`"priority": 1.5`), one("/sources/0/priority", "must be an integer, got number 1.5")},
	{"priority written as float", withTemplate(`"priority": 1.0`), one("/sources/0/priority", "must be an integer, got number 1.0")},
	{"priority exponent", withTemplate(`"priority": 1e3`), one("/sources/0/priority", "must be an integer, got number 1e3")},
	{"priority capital exponent", withTemplate(`"priority": 1E3`), one("/sources/0/priority", "must be an integer")},
	{"priority string", withTemplate(`"priority": "1"`), one("/sources/0/priority", `must be an integer, got string "1"`)},
	{"priority boolean", withTemplate(`"priority": true`), one("/sources/0/priority", "must be an integer, got boolean true")},
	{"priority null", withTemplate(`"priority": null`), one("/sources/0/priority", "must be an integer, got null")},
	{"priority too low", withTemplate(`"priority": -1000001`), one("/sources/0/priority", "must be an integer from -1000000 to 1000000, got -1000001")},
	{"priority too high", withTemplate(`"priority": 1000001`), one("/sources/0/priority", "from -1000000 to 1000000")},
	{"priority overflows int64", withTemplate(`"priority": 99999999999999999999`), one("/sources/0/priority", "from -1000000 to 1000000, got 99999999999999999999")},

	// tags.
	{"tags string", withTemplate(`"tags": "web"`), one("/sources/0/tags", `must be an array of at most 32 strings, got string "web"`)},
	{"tags too many", withTemplate(`"tags": ` + tagList(33)), one("/sources/0/tags", "must have at most 32 tags, got 33")},
	{"tag number", withTemplate(`"tags": ["web", 1]`), one("/sources/0/tags/1", "must be a string, got number 1")},
	{"tag empty", withTemplate(`"tags": [""]`), one("/sources/0/tags/0", "must not be empty")},
	{"tag too long", withTemplate(`"tags": ["` + strings.Repeat("t", 65) + `"]`), one("/sources/0/tags/0", "must be at most 64 characters, got 65")},
	{"tag with tab", withTemplate(`"tags": ["a\tb"]`), one("/sources/0/tags/0", "must not contain control characters")},
	{"tag invalid UTF-8", withTemplate("\"tags\": [\"\xff\"]"), one("/sources/0/tags/0", "must be valid UTF-8")},
	{"tag duplicate", withTemplate(`"tags": ["web", "db", "web"]`), one("/sources/0/tags/2", `duplicate tag "web": already listed at /sources/0/tags/0`)},

	// Duplicate sources.
	{"duplicate template source", withSources(`{"type": "template", "id": "template_a"}`, `{"type": "template", "id": "template_a", "priority": 5}`),
		one("/sources/1", `duplicate source "template:template_a": the same source is already listed at /sources/0`)},
	{"duplicate live source", withSources(`{"type": "live", "host": "h", "path": "/p"}`, `{"type": "template", "id": "b"}`, `{"type": "live", "host": "h", "path": "/p"}`),
		one("/sources/2", `duplicate source "live:h:/p": the same source is already listed at /sources/0`)},
	{"invalid sources are not compared", withSources(`{"type": "template", "id": "-a"}`, `{"type": "template", "id": "-a"}`), []wantProblem{
		{"/sources/0/id", "invalid template id"},
		{"/sources/1/id", "invalid template id"},
	}},

	// conflict_resolution.
	{"strategy missing", doc("conflict_resolution", ""), one("", `missing required field "conflict_resolution": want one of AI_AGENT, LAST_WIN, FIRST_WIN, PRIORITY`)},
	{"strategy unknown", doc("conflict_resolution", `"BEST"`), one("/conflict_resolution", `unknown strategy "BEST": want one of AI_AGENT, LAST_WIN, FIRST_WIN, PRIORITY`)},
	{"strategy lower case", doc("conflict_resolution", `"ai_agent"`), one("/conflict_resolution", "(names are upper case: AI_AGENT)")},
	{"strategy empty", doc("conflict_resolution", `""`), one("/conflict_resolution", `unknown strategy ""`)},
	{"strategy number", doc("conflict_resolution", `1`), one("/conflict_resolution", "must be a string, one of AI_AGENT, LAST_WIN, FIRST_WIN, PRIORITY, got number 1")},
	{"strategy list", doc("conflict_resolution", `["AI_AGENT"]`), one("/conflict_resolution", "got array")},

	// resource_limits.
	{"limits missing", doc("resource_limits", ""), one("", `missing required field "resource_limits": want an object with cpu, memory and disk`)},
	{"limits array", doc("resource_limits", `[]`), one("/resource_limits", "must be an object with cpu, memory and disk, got array")},
	{"limits string", doc("resource_limits", `"8 cores"`), one("/resource_limits", `got string "8 cores"`)},
	{"limits empty", doc("resource_limits", `{}`), []wantProblem{
		{"/resource_limits", `missing required field "cpu": want a string such as "8 cores"`},
		{"/resource_limits", `missing required field "memory": want a string such as "32GB"`},
		{"/resource_limits", `missing required field "disk": want a string such as "500GB"`},
	}},
	{"limits unknown field", withLimits(`"cpu": "8", "memory": "1GB", "disk": "1GB", "gpu": "1"`), one("/resource_limits/gpu", `unknown field "gpu": want one of cpu, memory, disk`)},
	{"limits duplicate field", withLimits(`"cpu": "8", "memory": "1GB", "disk": "1GB", "cpu": "9"`), one("/resource_limits/cpu", `duplicate field "cpu"`)},
	{"cpu word", withLimits(`"cpu": "eight", "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `invalid quantity "eight": want a number of cores such as "8 cores"`)},
	{"cpu capitalised unit", withLimits(`"cpu": "8 Cores", "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `invalid quantity "8 Cores"`)},
	{"cpu number", withLimits(`"cpu": 8, "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `must be a string such as "8 cores", got number 8: quote it, as in "8"`)},
	{"cpu fractional number", withLimits(`"cpu": 2.5, "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `quote it, as in "2.5"`)},
	{"cpu exponent number", withLimits(`"cpu": 1e3, "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `must be a string such as "8 cores", got number 1e3`)},
	{"cpu null", withLimits(`"cpu": null, "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `must be a string such as "8 cores", got null`)},
	{"cpu zero", withLimits(`"cpu": "0", "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `must be greater than zero, got "0"`)},
	{"cpu zero millicores", withLimits(`"cpu": "0m", "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", "must be greater than zero")},
	{"cpu negative", withLimits(`"cpu": "-1", "memory": "1GB", "disk": "1GB"`), one("/resource_limits/cpu", `invalid quantity "-1"`)},
	{"memory number", withLimits(`"cpu": "8", "memory": 32, "disk": "1GB"`), one("/resource_limits/memory", `must be a string such as "32GB", got number 32: quote it and give a unit`)},
	{"memory lower case unit", withLimits(`"cpu": "8", "memory": "32gb", "disk": "1GB"`), one("/resource_limits/memory", `invalid quantity "32gb": want a number with a unit`)},
	{"memory without unit", withLimits(`"cpu": "8", "memory": "32", "disk": "1GB"`), one("/resource_limits/memory", `invalid quantity "32"`)},
	{"memory too large", withLimits(`"cpu": "8", "memory": "99999999PiB", "disk": "1GB"`), one("/resource_limits/memory", "too large")},
	{"memory invalid UTF-8", withLimits("\"cpu\": \"8\", \"memory\": \"1\xffGB\", \"disk\": \"1GB\""), one("/resource_limits/memory", "must be valid UTF-8")},
	{"disk zero", withLimits(`"cpu": "8", "memory": "1GB", "disk": "0GB"`), one("/resource_limits/disk", `must be greater than zero, got "0GB"`)},
	{"disk number", withLimits(`"cpu": "8", "memory": "1GB", "disk": 500`), one("/resource_limits/disk", `must be a string such as "500GB"`)},
	{"disk object", withLimits(`"cpu": "8", "memory": "1GB", "disk": {}`), one("/resource_limits/disk", `must be a string such as "500GB", got object`)},
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range problemCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseBytes([]byte(tc.input))
			if err == nil {
				t.Fatalf("ParseBytes(%.200q) = %+v, nil; want an error", tc.input, m)
			}
			if m != nil {
				t.Errorf("ParseBytes returned a manifest with its error: %+v", m)
			}
			got := invalidProblems(t, err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), problemList(got))
			}
			for i, w := range tc.want {
				if got[i].Where != w.where || !strings.Contains(got[i].Message, w.message) {
					t.Errorf("problem %d = %q: %q\nwant %q: message containing %q", i, got[i].Where, got[i].Message, w.where, w.message)
				}
			}
		})
	}
}

// invalidProblems checks that err is the EINVALID error Parse promises and
// returns its problems.
func invalidProblems(t *testing.T, err error) []domain.Problem {
	t.Helper()
	var e *domain.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, want *domain.Error", err, err)
	}
	if e.Code != domain.EINVALID || e.Message != "invalid manifest" {
		t.Errorf("error code, message = %q, %q; want %q, %q", e.Code, e.Message, domain.EINVALID, "invalid manifest")
	}
	if len(e.Problems) == 0 {
		t.Errorf("error lists no problems")
	}
	return e.Problems
}

func problemList(ps []domain.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %q: %s\n", p.Where, p.Message)
	}
	return b.String()
}

type validCase struct {
	name  string
	input string
	check func(t *testing.T, m *domain.Manifest)
}

func wantSource(want domain.Source) func(t *testing.T, m *domain.Manifest) {
	return func(t *testing.T, m *domain.Manifest) {
		t.Helper()
		if len(m.Sources) != 1 || !reflect.DeepEqual(m.Sources[0], want) {
			t.Errorf("sources = %+v, want [%+v]", m.Sources, want)
		}
	}
}

// validCases are manifests at the edges of what is accepted.
var validCases = []validCase{
	{"minimal", doc(), func(t *testing.T, m *domain.Manifest) {
		want := &domain.Manifest{
			Name:               "Test",
			Sources:            []domain.Source{{Type: domain.TemplateSource, ID: "template_a"}},
			ConflictResolution: domain.FirstWin,
			ResourceLimits:     domain.Resources{CPUMillicores: 8000, MemoryBytes: 32e9, DiskBytes: 500e9},
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("got %+v, want %+v", m, want)
		}
	}},
	{"surrounding whitespace", " \r\n\t" + doc() + "\n\n", nil},
	{"name of 128 characters", doc("name", q(strings.Repeat("é", 128))), nil},
	{"name with surrogate pair", doc("name", `"env \ud83d\ude00"`), func(t *testing.T, m *domain.Manifest) {
		if m.Name != "env 😀" {
			t.Errorf("name = %q, want %q", m.Name, "env 😀")
		}
	}},
	{"name with escapes", doc("name", `"a\/b \"c\" \\ \u00e9"`), func(t *testing.T, m *domain.Manifest) {
		if want := `a/b "c" \ é`; m.Name != want {
			t.Errorf("name = %q, want %q", m.Name, want)
		}
	}},
	{"description with newlines and tabs", doc("description", `"line one\n\tline two\r\n"`), func(t *testing.T, m *domain.Manifest) {
		if want := "line one\n\tline two\r\n"; m.Description != want {
			t.Errorf("description = %q, want %q", m.Description, want)
		}
	}},
	{"description of 4096 characters", doc("description", q(strings.Repeat("ü", 4096))), nil},
	{"64 sources", func() string {
		s := make([]string, 64)
		for i := range s {
			s[i] = fmt.Sprintf(`{"type": "template", "id": "t%d"}`, i)
		}
		return withSources(s...)
	}(), func(t *testing.T, m *domain.Manifest) {
		for i, s := range m.Sources {
			if s.Index != i {
				t.Errorf("sources[%d].Index = %d", i, s.Index)
			}
		}
	}},
	{"template id of every allowed character", withSources(`{"type": "template", "id": "Aa0._-z"}`), wantSource(domain.Source{Type: domain.TemplateSource, ID: "Aa0._-z"})},
	{"template id of 128 characters", withSources(`{"type": "template", "id": "` + strings.Repeat("i", 128) + `"}`), nil},
	{"template id of one digit", withSources(`{"type": "template", "id": "0"}`), nil},
	{"live source", withSources(`{"path": "/var/app", "host": "db-1.example_2.com", "type": "live"}`),
		wantSource(domain.Source{Type: domain.LiveSource, Host: "db-1.example_2.com", Path: "/var/app"})},
	{"live host of 253 characters", withSources(`{"type": "live", "host": "` + strings.Repeat("h", 253) + `", "path": "/"}`), nil},
	{"live path root", withSources(`{"type": "live", "host": "h", "path": "/"}`), nil},
	{"live path with spaces and unicode", withSources(`{"type": "live", "host": "h", "path": "/srv/my app/données"}`), nil},
	{"live path with dots in names", withSources(`{"type": "live", "host": "h", "path": "/srv/..hidden/a..b/.x"}`), nil},
	{"live path of 4096 bytes", withSources(`{"type": "live", "host": "h", "path": "/` + strings.Repeat("p", 4095) + `"}`), nil},
	{"template and live with the same name", withSources(`{"type": "template", "id": "a"}`, `{"type": "live", "host": "a", "path": "/a"}`), nil},
	{"same host, different paths", withSources(`{"type": "live", "host": "h", "path": "/a"}`, `{"type": "live", "host": "h", "path": "/b"}`), nil},
	{"priority lowest", withTemplate(`"priority": -1000000`), wantSource(domain.Source{Type: domain.TemplateSource, ID: "template_a", Priority: -1000000})},
	{"priority highest", withTemplate(`"priority": 1000000`), wantSource(domain.Source{Type: domain.TemplateSource, ID: "template_a", Priority: 1000000})},
	{"priority negative zero", withTemplate(`"priority": -0`), wantSource(domain.Source{Type: domain.TemplateSource, ID: "template_a"})},
	{"tags empty", withTemplate(`"tags": []`), wantSource(domain.Source{Type: domain.TemplateSource, ID: "template_a"})},
	{"tags keep their order", withTemplate(`"tags": ["z", "a", "m"]`), wantSource(domain.Source{Type: domain.TemplateSource, ID: "template_a", Tags: []string{"z", "a", "m"}})},
	{"tags that differ only in case", withTemplate(`"tags": ["Web", "web"]`), nil},
	{"32 tags of 64 characters", func() string {
		tags := make([]string, 32)
		for i := range tags {
			tags[i] = q(fmt.Sprintf("%02d", i) + strings.Repeat("ß", 62))
		}
		return withTemplate(`"tags": [` + strings.Join(tags, ", ") + `]`)
	}(), nil},
	{"every strategy: AI_AGENT", doc("conflict_resolution", `"AI_AGENT"`), nil},
	{"every strategy: LAST_WIN", doc("conflict_resolution", `"LAST_WIN"`), nil},
	{"every strategy: PRIORITY", doc("conflict_resolution", `"PRIORITY"`), func(t *testing.T, m *domain.Manifest) {
		if m.ConflictResolution != domain.Priority {
			t.Errorf("strategy = %q, want %q", m.ConflictResolution, domain.Priority)
		}
	}},
	{"limits in other forms", withLimits(`"disk": "1.5TB", "cpu": "500m", "memory": "512MiB"`), func(t *testing.T, m *domain.Manifest) {
		want := domain.Resources{CPUMillicores: 500, MemoryBytes: 512 << 20, DiskBytes: 1.5e12}
		if m.ResourceLimits != want {
			t.Errorf("limits = %+v, want %+v", m.ResourceLimits, want)
		}
	}},
	{"limits rounded up", withLimits(`"cpu": "0.0001", "memory": "0.5B", "disk": "1G"`), func(t *testing.T, m *domain.Manifest) {
		want := domain.Resources{CPUMillicores: 1, MemoryBytes: 1, DiskBytes: 1e9}
		if m.ResourceLimits != want {
			t.Errorf("limits = %+v, want %+v", m.ResourceLimits, want)
		}
	}},
	{"nested 4 deep", withTemplate(`"tags": ["a"]`), nil},
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseBytes([]byte(tc.input))
			if err != nil {
				t.Fatalf("ParseBytes: %v", err)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestParseSeed(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "seed.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &domain.Manifest{
		Name:        "Custom Environment",
		Description: "A blended environment for testing",
		Sources: []domain.Source{
			{Type: domain.TemplateSource, ID: "template_a", Priority: 1, Tags: []string{"web", "database"}, Index: 0},
			{Type: domain.LiveSource, Host: "production_server_1", Path: "/var/app", Priority: 2, Tags: []string{"data", "logging"}, Index: 1},
			{Type: domain.TemplateSource, ID: "template_b", Priority: 0, Tags: []string{"analytics", "reporting"}, Index: 2},
		},
		ConflictResolution: domain.AIAgent,
		ResourceLimits:     domain.Resources{CPUMillicores: 8000, MemoryBytes: 32_000_000_000, DiskBytes: 500_000_000_000},
	}
	for _, tc := range []struct {
		name  string
		parse func() (*domain.Manifest, error)
	}{
		{"Parse", func() (*domain.Manifest, error) { return Parse(bytes.NewReader(data)) }},
		{"ParseBytes", func() (*domain.Manifest, error) { return ParseBytes(data) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.parse()
			if err != nil {
				t.Fatalf("parsing the seed: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if refs := []domain.SourceRef{got.Sources[0].Ref(), got.Sources[1].Ref()}; refs[0] != "template:template_a" || refs[1] != "live:production_server_1:/var/app" {
				t.Errorf("refs = %q", refs)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	input := `{
  "name": "",
  "sources": [
    {"type": "template", "id": "template_a", "priority": 1.5},
    {"type": "live", "host": "db", "prio": 1},
    {"type": "template", "id": "template_a"}
  ],
  "conflict_resolution": "BEST",
  "resource_limits": {"cpu": "eight", "memory": "32GB"}
}`
	want := []wantProblem{
		{"/name", "must not be empty"},
		{"/sources/0/priority", "must be an integer"},
		{"/sources/1", `missing required field "path"`},
		{"/sources/1/prio", `unknown field "prio"`},
		{"/sources/2", `duplicate source "template:template_a": the same source is already listed at /sources/0`},
		{"/conflict_resolution", `unknown strategy "BEST"`},
		{"/resource_limits", `missing required field "disk"`},
		{"/resource_limits/cpu", `invalid quantity "eight"`},
	}
	var first []domain.Problem
	for run := range 3 {
		_, err := ParseBytes([]byte(input))
		got := invalidProblems(t, err)
		if run == 0 {
			first = got
		} else if !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d reported\n%swant the same as run 0:\n%s", run, problemList(got), problemList(first))
		}
	}
	if len(first) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(first), len(want), problemList(first))
	}
	for i, w := range want {
		if first[i].Where != w.where || !strings.Contains(first[i].Message, w.message) {
			t.Errorf("problem %d = %q: %q\nwant %q: message containing %q", i, first[i].Where, first[i].Message, w.where, w.message)
		}
	}
}

func TestParseBoundsProblems(t *testing.T) {
	t.Parallel()
	// 150 sources that are not objects, plus the list being too long.
	input := doc("sources", "["+strings.TrimSuffix(strings.Repeat("1, ", 150), ", ")+"]")
	_, err := ParseBytes([]byte(input))
	got := invalidProblems(t, err)
	if len(got) != 101 {
		t.Fatalf("got %d problems, want 100 and a count of the rest", len(got))
	}
	if got[0].Where != "/sources" || got[1].Where != "/sources/0" || got[99].Where != "/sources/98" {
		t.Errorf("problems start %q, %q and the 100th is %q; want /sources, /sources/0 and /sources/98", got[0].Where, got[1].Where, got[99].Where)
	}
	if last := got[100]; last.Where != "" || last.Message != "... and 51 more problems" {
		t.Errorf("last problem = %q: %q, want %q: %q", last.Where, last.Message, "", "... and 51 more problems")
	}
}

func TestParseManyDuplicateFields(t *testing.T) {
	t.Parallel()
	// Each duplicate names its line and column; finding them must not cost
	// a scan of the input per duplicate.
	input := withLimits(`"cpu": "8", "memory": "1GB", "disk": "1GB"` + strings.Repeat(`, "cpu": "8"`, 45_000))
	_, err := ParseBytes([]byte(input))
	got := invalidProblems(t, err)
	if len(got) != 101 || got[0].Where != "/resource_limits/cpu" || got[100].Message != "... and 44900 more problems" {
		t.Errorf("got %d problems, the first at %q and the last %q; want 100 at /resource_limits/cpu and a count of 44900 more", len(got), got[0].Where, got[len(got)-1].Message)
	}
}

func TestParseSizeLimit(t *testing.T) {
	t.Parallel()
	seed := []byte(doc())
	atLimit := append(bytes.Clone(seed), bytes.Repeat([]byte(" "), MaxBytes-len(seed))...)
	overLimit := append(bytes.Clone(atLimit), ' ')
	tests := []struct {
		name    string
		input   []byte
		wantErr bool
	}{
		{"at the limit", atLimit, false},
		{"over the limit", overLimit, true},
		{"far over the limit", bytes.Repeat(overLimit, 3), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for name, parse := range map[string]func([]byte) (*domain.Manifest, error){
				"Parse":      func(b []byte) (*domain.Manifest, error) { return Parse(bytes.NewReader(b)) },
				"ParseBytes": ParseBytes,
			} {
				_, err := parse(tc.input)
				if !tc.wantErr {
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
					continue
				}
				got := invalidProblems(t, err)
				if len(got) != 1 || !strings.Contains(got[0].Message, "larger than 1 MiB") {
					t.Errorf("%s reported\n%swant one problem saying the manifest is larger than 1 MiB", name, problemList(got))
				}
			}
		})
	}
}

func TestParseReadError(t *testing.T) {
	t.Parallel()
	failure := errors.New("connection reset")
	_, err := Parse(iotest.ErrReader(failure))
	if !errors.Is(err, failure) {
		t.Fatalf("Parse of a failing reader: %v, want an error wrapping %v", err, failure)
	}
	if code := domain.ErrorCode(err); code != domain.EINTERNAL {
		t.Errorf("code = %q, want %q: a failing reader is not an invalid manifest", code, domain.EINTERNAL)
	}
}

func TestPosition(t *testing.T) {
	t.Parallel()
	data := []byte("ab\ncdé\n\nx")
	tests := []struct {
		off, line, col int
	}{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {5, 2, 3}, {7, 2, 4}, {8, 3, 1}, {9, 4, 1}, {10, 4, 2},
	}
	for _, tc := range tests {
		if line, col := position(data, tc.off); line != tc.line || col != tc.col {
			t.Errorf("position(%d) = %d:%d, want %d:%d", tc.off, line, col, tc.line, tc.col)
		}
	}
}
