package pipeline

// EStep is estep, for the external tests.
var EStep = estep
