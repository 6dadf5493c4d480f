package catalog

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/errdefs"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// LoadTemplate parses one template body. name is the file it came from, used
// in error messages and to derive the template id: "<id>.yaml", "<id>.yml",
// or ".../<id>/compose.yaml". The snapshot's Source names that id; it has no
// files, which only a catalog directory provides.
//
// Every error it returns for a bad body is an *domain.Error with code
// EINVALID whose message begins with name.
func LoadTemplate(ctx context.Context, name string, body []byte) (*domain.Snapshot, error) {
	id, err := idFromFileName(name)
	if err != nil {
		return nil, err
	}
	return loadTemplate(ctx, name, id, body)
}

func idFromFileName(name string) (string, error) {
	slashed := filepath.ToSlash(name)
	base := path.Base(slashed)
	var id string
	switch {
	case base == "compose.yaml" || base == "compose.yml":
		id = path.Base(path.Dir(slashed))
	case strings.HasSuffix(base, ".yaml"):
		id = strings.TrimSuffix(base, ".yaml")
	case strings.HasSuffix(base, ".yml"):
		id = strings.TrimSuffix(base, ".yml")
	default:
		return "", domain.Errorf(domain.EINVALID, "%s: a template file is named <id>.yaml, <id>.yml or <id>/compose.yaml", name)
	}
	if !idPattern.MatchString(id) {
		return "", domain.Errorf(domain.EINVALID, "%s: %q is not a valid template id: %s", name, id, idRule)
	}
	return id, nil
}

func loadTemplate(ctx context.Context, file, id string, body []byte) (*domain.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(body) > MaxTemplateBytes {
		return nil, tooLarge(file, int64(len(body)))
	}
	project, err := loadProject(ctx, file, id, body)
	if err != nil {
		return nil, err
	}
	return convert(file, id, project)
}

// loadProject runs compose-go on body. A panic inside compose-go becomes an
// EINVALID error naming the file: a malformed template must never take the
// process down.
func loadProject(ctx context.Context, file, id string, body []byte) (project *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			project = nil
			err = domain.Errorf(domain.EINVALID, "%s: the Compose loader cannot read this file (it failed with: %s)", file, truncate(fmt.Sprint(r), 200))
		}
	}()
	if err := checkPortRanges(file, id, body); err != nil {
		return nil, err
	}
	project, err = loader.LoadWithContext(ctx, configDetails(file, body), loaderOptions(id, true))
	if err != nil && strings.HasPrefix(err.Error(), "dependency cycle detected") {
		// compose-go finds cycles by ranging over a map, so which cycle it
		// names and where it starts vary from run to run. The cycle check is
		// its last consistency check: load again without it, and name the
		// cycle deterministically in convert.
		cycleErr := err
		project, err = loader.LoadWithContext(ctx, configDetails(file, body), loaderOptions(id, false))
		if err == nil && findCycle(project) == nil {
			err = cycleErr // never let a cycle through, however compose-go saw it
		}
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, composeError(file, err)
	}
	return project, nil
}

func configDetails(file string, body []byte) types.ConfigDetails {
	return types.ConfigDetails{
		// Nothing is resolved against the working directory (ResolvePaths is
		// off and includes are refused), so it never reaches the output.
		WorkingDir:  ".",
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: body}},
		// An empty interpolation environment: the same template loads the
		// same way on every machine. ${X:-default} still works.
		Environment: types.Mapping{},
	}
}

// loaderOptions makes compose-go deterministic and keeps it from reading
// anything but the template itself.
func loaderOptions(id string, checkConsistency bool) func(*loader.Options) {
	return func(o *loader.Options) {
		o.SetProjectName(loader.NormalizeProjectName(id), true)
		o.ResolvePaths = false          // no machine-specific absolute paths
		o.SkipResolveEnvironment = true // env_file entries are not read
		o.SkipResolveLabels = true      // nor label_file entries
		o.SkipConsistencyCheck = !checkConsistency
		o.ResourceLoaders = []loader.ResourceLoader{refuseResources{}}
		o.Interpolate.Substitute = strictSubstitute
	}
}

// refuseResources is the only resource loader compose-go gets: it accepts
// every path that an include or extends.file names, and refuses to load it,
// so a template can never pull in a file from elsewhere on the machine or the
// network. (Extending a service of the same file needs no loader.)
type refuseResources struct{}

func (refuseResources) Accept(string) bool { return true }

func (refuseResources) Load(_ context.Context, p string) (string, error) {
	return "", fmt.Errorf("include and extends.file are not supported, a template is one self-contained Compose file (this one names %q)", truncate(p, 200))
}

func (refuseResources) Dir(string) string { return "." }

// strictSubstitute interpolates like compose-go, but an unset variable is an
// error rather than a silent blank: templates are interpolated with an empty
// environment, so ${X} alone can only ever be a mistake.
func strictSubstitute(tmpl string, mapping template.Mapping) (string, error) {
	var unset string
	replace := func(sub string, m template.Mapping, cfg *template.Config) (string, error) {
		value, applied, err := template.DefaultReplacementAppliedFunc(sub, m, cfg)
		if err == nil && !applied && unset == "" {
			unset = variableName(sub)
		}
		return value, err
	}
	out, err := template.SubstituteWithOptions(tmpl, mapping, template.WithoutLogging, template.WithReplacementFunction(replace))
	if err == nil && unset != "" {
		err = fmt.Errorf("variable %q is not set: templates are interpolated with an empty environment; give a default (${%s:-value}), or pass an environment-wide variable through to the service with `environment: [%s]`", unset, unset, unset)
	}
	return out, err
}

// variableName extracts NAME from "$NAME", "${NAME}" or "${NAME...}".
func variableName(sub string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(sub, "$"), "{")
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
	if end >= 0 {
		s = s[:end]
	}
	return truncate(s, 100)
}

// composeError rewraps an error from compose-go as an EINVALID error whose
// message begins with the file, without the file name compose-go may already
// have put into it.
func composeError(file string, err error) error {
	msg := err.Error()
	for _, prefix := range []string{"validating " + file + ": ", "failed to parse " + file + ": "} {
		msg = strings.ReplaceAll(msg, prefix, "")
	}
	msg = strings.TrimSuffix(msg, ": "+errInvalidText)
	return domain.Errorf(domain.EINVALID, "%s: %s", file, truncate(msg, 2000))
}

// errInvalidText is what compose-go's errdefs.ErrInvalid adds to the end of
// consistency errors; the error code says as much.
var errInvalidText = errdefs.ErrInvalid.Error()

// truncate shortens s to about n bytes, keeping it valid UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
