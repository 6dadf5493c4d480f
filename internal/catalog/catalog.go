// Package catalog is the template catalog: a directory of Compose files that
// snapcompose composes environments from.
//
// A catalog directory holds <id>.yaml (or .yml), or <id>/compose.yaml (or
// compose.yml) with an optional <id>/files/ tree whose paths map to the
// environment's root: files/etc/app.conf becomes /etc/app.conf.
//
// A template is a Compose file, loaded with compose-go, with two additions:
//
//	x-snapcompose:               # the template
//	  id: web                    # must be the id its file name gives
//	  description: ...
//	  tags: [web, database]
//	  env: {LOG_LEVEL: info}     # environment-wide variables, for the composed .env
//	services:
//	  db:
//	    deploy:
//	      resources:
//	        limits: {cpus: "2", memory: 4G}       # what it asks for
//	        reservations: {cpus: "1", memory: 2G} # the least it accepts
//	    x-snapcompose: {disk: 50GB, min_disk: 20GB, optional: false, latency_sensitive: true}
//
// Templates are loaded the same way on every machine: interpolation sees an
// empty environment (so ${X:-default} works and a bare ${X} is an error),
// relative paths stay relative, env_file and label_file are not read, and
// include and extends.file are refused.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// MaxTemplateBytes bounds a template file, so that a hostile or mistaken
// catalog cannot make the Compose loader parse an arbitrarily large document.
const MaxTemplateBytes = 4 << 20

// idPattern is what a template id may look like. It keeps ids usable as file
// names and Compose project names, and keeps Retrieve inside the catalog.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Catalog is a template catalog directory. It reads the directory on every
// call, so edits to the catalog are seen at once, and it is safe for
// concurrent use.
type Catalog struct {
	dir string // as the user gave it, so messages name files the way they know them
}

var _ domain.SnapshotSource = (*Catalog)(nil)

// Open returns the catalog in dir. It returns EINVALID when dir does not
// exist or is not a directory.
func Open(dir string) (*Catalog, error) {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, domain.Errorf(domain.EINVALID, "catalog directory %q does not exist", dir)
	case err != nil:
		return nil, domain.Errorf(domain.EINVALID, "catalog directory %q cannot be read: %v", dir, unwrapPathError(err))
	case !info.IsDir():
		return nil, domain.Errorf(domain.EINVALID, "catalog %q is not a directory", dir)
	}
	return &Catalog{dir: dir}, nil
}

// Dir returns the catalog directory as it was given to Open.
func (c *Catalog) Dir() string { return c.dir }

// IDs returns the sorted ids of the templates in the catalog. It returns
// EINVALID when an id is defined twice or a template's name is not a valid id.
func (c *Catalog) IDs() ([]string, error) {
	found, err := c.scan()
	if err != nil {
		return nil, err
	}
	var problems []domain.Problem
	ids := make([]string, 0, len(found))
	for _, t := range found {
		switch {
		case !idPattern.MatchString(t.id):
			problems = append(problems, domain.Problem{Where: c.display(t.paths[0]), Message: fmt.Sprintf("%q is not a valid template id: %s", t.id, idRule)})
		case len(t.paths) > 1:
			problems = append(problems, domain.Problem{Where: c.display(t.paths[0]), Message: duplicateMessage(t.id, c.displayAll(t.paths))})
		default:
			ids = append(ids, t.id)
		}
	}
	if len(problems) > 0 {
		return nil, domain.Invalid(fmt.Sprintf("catalog %s is invalid", c.dir), problems)
	}
	return ids, nil
}

// Retrieve loads the template src names. It returns ENOTFOUND when the
// catalog has no such template, EINVALID when the template is malformed or
// defined twice (the error names the file and field), and EUNAVAILABLE when
// the catalog directory cannot be read.
func (c *Catalog) Retrieve(ctx context.Context, src domain.Source) (*domain.Snapshot, error) {
	if src.Type != domain.TemplateSource {
		return nil, domain.Errorf(domain.EINVALID, "the template catalog cannot retrieve %s source %s", src.Type, src.Ref())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !idPattern.MatchString(src.ID) {
		return nil, c.notFound(src.ID)
	}
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "catalog directory %q cannot be opened: %v", c.dir, unwrapPathError(err))
	}
	defer root.Close()

	var present []string
	for _, rel := range candidatePaths(src.ID) {
		if _, err := root.Lstat(rel); err == nil {
			present = append(present, rel)
		} else if !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
			return nil, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", c.display(rel), unwrapPathError(err))
		}
	}
	switch len(present) {
	case 0:
		return nil, c.notFound(src.ID)
	case 1:
	default:
		return nil, domain.Errorf(domain.EINVALID, "%s", duplicateMessage(src.ID, c.displayAll(present)))
	}

	rel := present[0]
	body, err := readTemplate(root, rel, c.display(rel))
	if err != nil {
		return nil, err
	}
	snap, err := loadTemplate(ctx, c.display(rel), src.ID, body)
	if err != nil {
		return nil, err
	}
	snap.Source = src
	if dirForm := path.Dir(rel) != "."; dirForm {
		filesDir := path.Join(src.ID, "files")
		snap.Files, err = walkFiles(ctx, root.FS(), filesDir, c.display(filesDir))
		if err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// candidatePaths lists, in order of preference, where template id may live.
func candidatePaths(id string) []string {
	return []string{id + ".yaml", id + ".yml", id + "/compose.yaml", id + "/compose.yml"}
}

const idRule = "ids start with a letter or digit and contain only letters, digits, '.', '_' and '-' (at most 128 characters)"

func duplicateMessage(id string, paths []string) string {
	return fmt.Sprintf("template %q is defined more than once: %s; keep one", id, strings.Join(paths, " and "))
}

func (c *Catalog) notFound(id string) error {
	have := "none"
	if found, err := c.scan(); err == nil && len(found) > 0 {
		ids := make([]string, 0, len(found))
		for _, t := range found {
			ids = append(ids, t.id)
		}
		have = strings.Join(ids, ", ")
	}
	return domain.Errorf(domain.ENOTFOUND, "template %q not found in catalog %s (have: %s)", id, c.dir, have)
}

// foundTemplate is a template id and every path that defines it.
type foundTemplate struct {
	id    string
	paths []string // relative to the catalog directory, slash-separated
}

// scan lists the template-shaped entries of the catalog directory, sorted by
// id. Other entries (READMEs, hidden files, directories without a Compose
// file) are not templates and are left alone.
func (c *Catalog) scan() ([]foundTemplate, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "catalog directory %q cannot be read: %v", c.dir, unwrapPathError(err))
	}
	byID := map[string][]string{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if e.IsDir() {
			for _, f := range []string{"compose.yaml", "compose.yml"} {
				if _, err := os.Lstat(filepath.Join(c.dir, name, f)); err == nil {
					byID[name] = append(byID[name], name+"/"+f)
				}
			}
			continue
		}
		for _, ext := range []string{".yaml", ".yml"} {
			if id, ok := strings.CutSuffix(name, ext); ok && id != "" {
				byID[id] = append(byID[id], name)
			}
		}
	}
	found := make([]foundTemplate, 0, len(byID))
	for id, paths := range byID {
		slices.SortFunc(paths, func(a, b string) int { return rankPath(id, a) - rankPath(id, b) })
		found = append(found, foundTemplate{id: id, paths: paths})
	}
	slices.SortFunc(found, func(a, b foundTemplate) int { return strings.Compare(a.id, b.id) })
	return found, nil
}

func rankPath(id, p string) int {
	return slices.Index(candidatePaths(id), p)
}

func (c *Catalog) display(rel string) string {
	return filepath.Join(c.dir, filepath.FromSlash(rel))
}

func (c *Catalog) displayAll(rels []string) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = c.display(r)
	}
	return out
}

// readTemplate reads a template file, refusing anything that is not a
// regular file or is larger than MaxTemplateBytes.
func readTemplate(root *os.Root, rel, display string) ([]byte, error) {
	f, err := root.Open(rel)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "%s cannot be opened: %v", display, unwrapPathError(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", display, unwrapPathError(err))
	}
	if !info.Mode().IsRegular() {
		return nil, domain.Errorf(domain.EINVALID, "%s is not a regular file", display)
	}
	if info.Size() > MaxTemplateBytes {
		return nil, tooLarge(display, info.Size())
	}
	body, err := io.ReadAll(io.LimitReader(f, MaxTemplateBytes+1))
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", display, unwrapPathError(err))
	}
	if len(body) > MaxTemplateBytes {
		return nil, tooLarge(display, int64(len(body)))
	}
	return body, nil
}

func tooLarge(display string, size int64) error {
	return domain.Errorf(domain.EINVALID, "%s: %s is larger than a template may be (%s)", display, quantity.FormatBytes(size), quantity.FormatBytes(MaxTemplateBytes))
}

// unwrapPathError drops the operation and path of an *fs.PathError, which
// messages already name in the user's terms.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// isNotDir reports an ENOTDIR failure: Lstat of "<id>/compose.yaml" when
// <id> is a regular file, which simply means the directory form is absent.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}
