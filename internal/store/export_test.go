package store

// ConstraintError lets tests map errors of raw SQL the way the store does.
var ConstraintError = constraintError
