package simulate_test

import (
	"slices"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/training/simulate"
)

func TestTouched(t *testing.T) {
	a, b := domain.SourceRef("template:a"), domain.SourceRef("live:h:/p")
	env := []simulate.ServiceRef{
		{Name: "api", Source: a, Reads: []string{"env:DATABASE_URL"}},
		{Name: "web", Source: a},
		{Name: "db-template_a", Source: a},
		{Name: "worker", Source: b},
		{Name: "db", Source: b},
	}
	tests := []struct {
		name      string
		key       string
		claimants []domain.Claimant
		want      []int
	}{
		{"a variable touches the services that read it", "env:DATABASE_URL", []domain.Claimant{{Source: a}, {Source: b}}, []int{0, 3, 4}},
		{"no reader known: every service of the source", "env:LOG_LEVEL", []domain.Claimant{{Source: a}}, []int{0, 1, 2}},
		{"a service, renamed or not", "service:db", []domain.Claimant{{Source: a, Owner: "db"}, {Source: b, Owner: "db"}}, []int{2, 4}},
		{"not a prefix without the dash", "port:tcp/80", []domain.Claimant{{Source: a, Owner: "we"}}, nil},
	}
	for _, tt := range tests {
		if got := simulate.Touched(tt.key, tt.claimants, env); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
