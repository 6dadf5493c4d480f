// Package plantest checks plans against the plan contract in tests.
package plantest

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/snapcompose/snapcompose/internal/domain"
)

var (
	once   sync.Once
	schema *jsonschema.Schema
	err    error
)

func compiled() (*jsonschema.Schema, error) {
	once.Do(func() {
		doc, e := jsonschema.UnmarshalJSON(bytes.NewReader(domain.PlanSchema))
		if e != nil {
			err = e
			return
		}
		c := jsonschema.NewCompiler()
		if e := c.AddResource("urn:snapcompose:plan:v1", doc); e != nil {
			err = e
			return
		}
		schema, err = c.Compile("urn:snapcompose:plan:v1")
	})
	return schema, err
}

// Validate fails t unless body is a plan that satisfies plan.schema.json.
func Validate(t testing.TB, body []byte) {
	t.Helper()
	s, err := compiled()
	if err != nil {
		t.Fatalf("compiling plan schema: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("plan is not JSON: %v", err)
	}
	if err := s.Validate(doc); err != nil {
		t.Fatalf("plan violates plan.schema.json: %v", err)
	}
}

// ValidatePlan marshals p and validates it.
func ValidatePlan(t testing.TB, p *domain.Plan) {
	t.Helper()
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshalling plan: %v", err)
	}
	Validate(t, body)
}
