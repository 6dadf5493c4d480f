package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Limits on a template's files tree.
const (
	MaxFiles     = 100_000 // entries (files and directories)
	MaxPathBytes = 4096    // bytes in a file's path in the environment
)

// walkFiles lists the regular files under dir in fsys, sorted by the
// absolute path each takes in the environment. display is how dir is
// named in messages. A missing dir means no files.
func walkFiles(ctx context.Context, fsys fs.FS, dir, display string) ([]domain.File, error) {
	files := []domain.File{}
	info, err := fs.Lstat(fsys, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return files, nil
	case err != nil:
		return nil, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", display, unwrapPathError(err))
	case !info.IsDir():
		return nil, domain.Errorf(domain.EINVALID, "%s is %s; it must be a directory of the files to place in the environment", display, fileKind(info.Mode()))
	}

	buf := make([]byte, 64<<10)
	entries := 0
	err = fs.WalkDir(fsys, dir, func(name string, d fs.DirEntry, err error) error {
		shown := filepath.Join(display, filepath.FromSlash(strings.TrimPrefix(name, dir)))
		if err != nil {
			return domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", shown, unwrapPathError(err))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if entries++; entries > MaxFiles {
			return domain.Errorf(domain.EINVALID, "%s holds more than %d files and directories", display, MaxFiles)
		}
		if name == dir {
			return nil
		}
		target := "/" + strings.TrimPrefix(name, dir+"/")
		switch {
		case !utf8.ValidString(target):
			return domain.Errorf(domain.EINVALID, "%s: the path is not valid UTF-8", strings.ToValidUTF8(shown, "\uFFFD"))
		case len(target) > MaxPathBytes:
			return domain.Errorf(domain.EINVALID, "%s: the path in the environment is longer than %d bytes", truncate(shown, 200), MaxPathBytes)
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return domain.Errorf(domain.EINVALID, "%s is %s; only regular files and directories are accepted", shown, fileKind(d.Type()))
		}
		file, err := digestFile(fsys, name, shown, buf)
		if err != nil {
			return err
		}
		file.Path = target
		files = append(files, file)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The walk is lexical per directory ("a/z" before "a.conf"); sorting by
	// the full path gives the order every later stage expects.
	slices.SortFunc(files, func(a, b domain.File) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// digestFile hashes a regular file by streaming it, so a large file never
// has to fit in memory.
func digestFile(fsys fs.FS, name, shown string, buf []byte) (domain.File, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return domain.File{}, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be opened: %v", shown, unwrapPathError(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return domain.File{}, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", shown, unwrapPathError(err))
	}
	if !info.Mode().IsRegular() {
		// It changed between listing and opening.
		return domain.File{}, domain.Errorf(domain.EINVALID, "%s is %s; only regular files and directories are accepted", shown, fileKind(info.Mode()))
	}
	h := sha256.New()
	size, err := io.CopyBuffer(h, f, buf)
	if err != nil {
		return domain.File{}, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", shown, unwrapPathError(err))
	}
	return domain.File{
		Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)),
		Size:   size,
		Mode:   uint32(info.Mode().Perm()),
	}, nil
}

// fileKind names what a non-regular file is, for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsRegular():
		return "a regular file"
	default:
		return fmt.Sprintf("a special file (%s)", m.Type())
	}
}

// Blob opens the file template id places at path (absolute, in the
// environment), for materialising a composition. The bytes are checked
// against digest as they are read: a mismatch — the file changed since the
// template was retrieved — fails the last Read. It returns ENOTFOUND when
// the template has no such file.
func (c *Catalog) Blob(ctx context.Context, id, filePath, digest string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !idPattern.MatchString(id) || !path.IsAbs(filePath) || path.Clean(filePath) != filePath {
		return nil, domain.Errorf(domain.EINVALID, "template %q file %q: ids are as in the catalog, paths absolute and clean", id, filePath)
	}
	want, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return nil, domain.Errorf(domain.EINVALID, "template %s file %s: digest %q is not of the form sha256:<hex>", id, filePath, digest)
	}
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "catalog directory %q cannot be opened: %v", c.dir, unwrapPathError(err))
	}
	defer root.Close()
	rel := path.Join(id, "files", filePath)
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, domain.Errorf(domain.ENOTFOUND, "template %s has no file %s (%s)", id, filePath, c.display(rel))
	}
	if err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "%s cannot be read: %v", c.display(rel), unwrapPathError(err))
	}
	return &checkedFile{f: f, sum: sha256.New(), want: want, name: c.display(rel)}, nil
}

// checkedFile checks a file against its digest as it is read.
type checkedFile struct {
	f    *os.File
	sum  hash.Hash
	want string
	name string
}

func (c *checkedFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.sum.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(c.sum.Sum(nil)); got != c.want {
			return n, domain.Errorf(domain.ECONFLICT, "%s changed since the template was retrieved: its digest is now sha256:%s", c.name, got)
		}
	}
	return n, err
}

func (c *checkedFile) Close() error { return c.f.Close() }
