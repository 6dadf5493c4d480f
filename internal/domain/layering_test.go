package domain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages pkg depends on, transitively, with whether each
// is in the standard library.
func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		m[path] = std == "true"
	}
	return m
}

// TestLayering keeps the dependency rules of DESIGN.md: the domain package
// imports only the standard library, and the orchestrator reaches
// databases, HTTP, the model runtime and concrete sources only through the
// interfaces in domain, so it never imports them.
func TestLayering(t *testing.T) {
	t.Parallel()
	const module = "github.com/snapcompose/snapcompose/"
	tests := []struct {
		name      string
		pkg       string
		forbidden []string // import path prefixes
		stdOnly   bool
	}{
		{name: "domain imports only the standard library", pkg: module + "internal/domain", stdOnly: true},
		{name: "quantity imports only the standard library", pkg: module + "internal/quantity", stdOnly: true},
		{name: "usage parsing imports only the standard library", pkg: module + "internal/usage", stdOnly: true},
		{name: "the agent protocol imports only the standard library", pkg: module + "internal/agentapi", stdOnly: true},
		{name: "orchestrator sees the rest through interfaces", pkg: module + "internal/orchestrator", forbidden: []string{
			"github.com/jackc/pgx", "github.com/go-chi/chi", "github.com/yalue/onnxruntime_go",
			"github.com/compose-spec/compose-go",
			module + "internal/catalog", module + "internal/agent", module + "internal/manifest",
			module + "internal/live", module + "internal/hosts", module + "internal/store",
		}},
		{name: "composer is pure logic", pkg: module + "internal/composer", forbidden: []string{
			"github.com/jackc/pgx", "github.com/go-chi/chi", "github.com/yalue/onnxruntime_go", "github.com/compose-spec/compose-go", "net/http",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for dep, std := range deps(t, tt.pkg) {
				if tt.stdOnly && !std && !strings.HasPrefix(dep, tt.pkg) && dep != module+"internal/domain" {
					t.Errorf("%s imports %s, which is not in the standard library", tt.pkg, dep)
				}
				for _, f := range tt.forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("%s depends on %s", tt.pkg, dep)
					}
				}
			}
		})
	}
}
