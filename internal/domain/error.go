package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. Every error that reaches a user carries one; the CLI maps codes
// to exit codes and the HTTP layer maps them to statuses, each in one table.
const (
	EINVALID     = "invalid"     // the input (manifest, catalog, hosts file, flags) is wrong
	ENOTFOUND    = "not_found"   // something the input names does not exist
	ECONFLICT    = "conflict"    // the request clashes with what exists (a duplicate, a reused idempotency key)
	EINFEASIBLE  = "infeasible"  // the composition cannot be made within its limits
	EPARTIAL     = "partial"     // some of the input was rejected; the rest was applied
	EUNAVAILABLE = "unavailable" // a source or dependency cannot be reached
	EINTERNAL    = "internal"    // a bug or an unexpected failure; details are logged, not shown
)

// Problem is one thing wrong with an input, located precisely: a JSON pointer
// for a manifest ("/sources/2/priority"), or a file and field for a catalog.
type Problem struct {
	Where   string `json:"where"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Where == "" {
		return p.Message
	}
	return p.Where + ": " + p.Message
}

// Error is the application error. Message is written for the user; Problems
// lists every individual fault when an input has several, so they can all be
// fixed at once.
type Error struct {
	Code     string
	Message  string
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing problems under a summary message.
func Invalid(message string, problems []Problem) *Error {
	return &Error{Code: EINVALID, Message: message, Problems: problems}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing text of err: the *Error's text including
// its problems, with any wrapping context kept, or a generic text for internal
// errors whose details are not meant for users.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return err.Error()
	}
	return "internal error"
}
