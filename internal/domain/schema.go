package domain

import _ "embed"

// PlanSchema is the JSON Schema of the plan contract, copied from the
// project's shared contracts; every plan a test produces is validated
// against it.
//
//go:embed plan.schema.json
var PlanSchema []byte
