package snapagent

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// atFDCWD is AT_FDCWD: a path relative to the working directory (or, as
// here, absolute).
const atFDCWD = -0x64

// maxSymlinks bounds the symlinks followed resolving one path, as the
// kernel's MAXSYMLINKS does.
const maxSymlinks = 40

// target is what a requested path names under a root.
type target struct {
	root  root
	shown string   // the requested path, cleaned: files are reported under it
	real  string   // the same place with its symlinks resolved
	rel   []string // real's components below root.real
	mode  fs.FileMode
}

// pseudoDirs are never served, whatever the roots: their files describe
// the host and its processes rather than hold an application's data.
var pseudoDirs = []string{"/proc", "/sys", "/dev"}

func isPseudoPath(p string) bool {
	for _, d := range pseudoDirs {
		if within(p, d) {
			return true
		}
	}
	return false
}

// within reports whether the clean absolute path p is dir or lies under it.
// It compares whole components: /tmp/root2 is not within /tmp/root.
func within(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// below returns p's components under dir; p must be within dir.
func below(p, dir string) []string {
	return strings.FieldsFunc(p[len(dir):], func(r rune) bool { return r == '/' })
}

// joinUnder joins components onto dir.
func joinUnder(dir string, parts []string) string {
	if len(parts) == 0 {
		return dir
	}
	if dir == "/" {
		return "/" + strings.Join(parts, "/")
	}
	return dir + "/" + strings.Join(parts, "/")
}

// locate finds the root the clean path p lies under, as the root was given
// or as it resolves, preferring the deepest root, and returns p's
// components below it.
func (a *Agent) locate(p string) (root, []string, bool) {
	var best root
	var rel []string
	found, depth := false, -1
	for _, r := range a.roots {
		for _, base := range []string{r.given, r.real} {
			if within(p, base) && len(base) > depth {
				best, rel, found, depth = r, below(p, base), true, len(base)
			}
		}
	}
	return best, rel, found
}

// rootOf finds the root a real (resolved) path lies under.
func (a *Agent) rootOf(real string) (root, []string, bool) {
	var best root
	found := false
	for _, r := range a.roots {
		if within(real, r.real) && (!found || len(r.real) > len(best.real)) {
			best, found = r, true
		}
	}
	if !found {
		return root{}, nil, false
	}
	return best, below(real, best.real), true
}

func (a *Agent) rootList() string {
	names := make([]string, len(a.roots))
	for i, r := range a.roots {
		names[i] = r.given
	}
	return strings.Join(names, ", ")
}

// resolve checks a path a client sent and resolves it under its root.
// Nothing outside the root is looked at: a symlink is followed only when
// its target, read as text, stays inside. What it names must be a directory
// or a regular file. Errors are *httpError: 400 for a malformed path or a
// fifo, socket or device, 403 for a path outside the roots, 404 for a
// missing one.
func (a *Agent) resolve(p string) (target, error) {
	if err := validatePath(p); err != nil {
		return target{}, statusError(http.StatusBadRequest, domain.EINVALID, "%s", err.Error())
	}
	clean := filepath.Clean(p)
	if isPseudoPath(clean) {
		return target{}, statusError(http.StatusForbidden, domain.EINVALID, "%s is in /proc, /sys or /dev, which the agent never serves", quote(clean))
	}
	rt, rel, ok := a.locate(clean)
	if !ok {
		return target{}, statusError(http.StatusForbidden, domain.EINVALID, "%s is not under a root this agent serves (%s)", quote(clean), a.rootList())
	}
	parts, mode, err := resolveBeneath(rt, rel, clean)
	if err != nil {
		return target{}, err
	}
	if !mode.IsDir() && !mode.IsRegular() {
		return target{}, statusError(http.StatusBadRequest, domain.EINVALID, "%s is a %s; capture a directory or a regular file", quote(clean), kindOf(fileTypeBits(mode)))
	}
	return target{root: rt, shown: clean, real: joinUnder(rt.real, parts), rel: parts, mode: mode}, nil
}

// resolveBeneath resolves the components rel below rt.real, following
// symlinks only while they stay inside rt, and returns the resolved
// components and the type of what they name. shown is the path as the
// client wrote it, for messages.
func resolveBeneath(rt root, rel []string, shown string) ([]string, fs.FileMode, error) {
	var done []string
	pending := append([]string(nil), rel...)
	links := 0
	mode := fs.ModeDir // of rt.real, checked when the agent started
	if len(pending) == 0 {
		info, err := os.Lstat(rt.real)
		if err != nil {
			return nil, 0, openError(shown, rt.real, err)
		}
		mode = info.Mode()
	}
	for len(pending) > 0 {
		comp := pending[0]
		pending = pending[1:]
		switch comp {
		case "", ".":
			continue
		case "..": // only from a symlink's target: validatePath refuses it in requests
			if len(done) == 0 {
				return nil, 0, statusError(http.StatusForbidden, domain.EINVALID, "%s leads outside the root %s through a symlink", quote(shown), rt.given)
			}
			done = done[:len(done)-1]
			mode = fs.ModeDir
			continue
		}
		cur := joinUnder(rt.real, append(done, comp))
		if isPseudoPath(cur) {
			return nil, 0, statusError(http.StatusForbidden, domain.EINVALID, "%s leads into /proc, /sys or /dev, which the agent never serves", quote(shown))
		}
		info, err := os.Lstat(cur)
		if err != nil {
			return nil, 0, openError(shown, cur, err)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return nil, 0, statusError(http.StatusBadRequest, domain.EINVALID, "%s: too many levels of symlinks", quote(shown))
			}
			link, err := os.Readlink(cur)
			if err != nil {
				return nil, 0, openError(shown, cur, err)
			}
			if filepath.IsAbs(link) {
				t := filepath.Clean(link)
				switch {
				case within(t, rt.real):
					done, pending = nil, append(below(t, rt.real), pending...)
				case within(t, rt.given):
					done, pending = nil, append(below(t, rt.given), pending...)
				default:
					return nil, 0, statusError(http.StatusForbidden, domain.EINVALID, "%s leads outside the root %s: %s is a symlink to %s",
						quote(shown), rt.given, cur, quote(link))
				}
			} else {
				pending = append(strings.Split(link, "/"), pending...)
			}
			mode = fs.ModeDir
			continue
		}
		if len(pending) > 0 && !info.IsDir() {
			return nil, 0, statusError(http.StatusNotFound, domain.ENOTFOUND, "%s does not exist: %s is not a directory", quote(shown), cur)
		}
		done = append(done, comp)
		mode = info.Mode()
	}
	return done, mode, nil
}

// openError explains a failure to look up or open p, part of the path shown.
func openError(shown, p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		if p == shown {
			return statusError(http.StatusNotFound, domain.ENOTFOUND, "%s does not exist", quote(shown))
		}
		return statusError(http.StatusNotFound, domain.ENOTFOUND, "%s does not exist (%s: %v)", quote(shown), p, pathErr(err))
	case errors.Is(err, fs.ErrPermission):
		return statusError(http.StatusForbidden, domain.EINVALID, "%s: the agent may not read %s", quote(shown), p)
	case errors.Is(err, syscall.ELOOP):
		return statusError(http.StatusConflict, domain.ECONFLICT, "%s changed while it was opened: %s became a symlink; try again", quote(shown), p)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return statusError(http.StatusBadRequest, domain.EINVALID, "%s: name too long", quote(shown))
	}
	return err
}

// openBeneath opens the components rel below the directory dir, one at a
// time, each relative to its parent's descriptor and with O_NOFOLLOW, so a
// component swapped for a symlink since it was resolved fails (ELOOP)
// instead of leading elsewhere. The last component is opened with
// O_NONBLOCK|O_NOCTTY: if it has become a fifo or a terminal meanwhile,
// opening it neither blocks nor takes it over. The caller checks its type.
func openBeneath(dir string, rel []string) (int, error) {
	fd, err := openat(atFDCWD, dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	for i, comp := range rel {
		flags := syscall.O_RDONLY | syscall.O_NOFOLLOW
		if i < len(rel)-1 {
			flags |= syscall.O_DIRECTORY
		} else {
			flags |= syscall.O_NONBLOCK | syscall.O_NOCTTY
		}
		next, err := openat(fd, comp, flags)
		syscall.Close(fd)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: joinUnder(dir, rel[:i+1]), Err: err}
		}
		fd = next
	}
	return fd, nil
}

// openat opens name relative to dirfd, close-on-exec, retrying when a
// signal interrupts it.
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := syscall.Openat(dirfd, name, flags|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// pseudoFS names the file systems whose directories a walk does not enter,
// by their statfs magic numbers (linux/magic.h).
var pseudoFS = map[int64]string{
	0x9fa0:     "proc",
	0x62656572: "sysfs",
	0x27e0eb:   "cgroup",
	0x63677270: "cgroup2",
	0x64626720: "debugfs",
	0x74726163: "tracefs",
	0x73636673: "securityfs",
	0x1cd1:     "devpts",
	0xcafe4a11: "bpf",
	0x6165676c: "pstore",
	0x62656570: "configfs",
	0xde5e81e4: "efivarfs",
	0x42494e4d: "binfmt_misc",
	0x6e736673: "nsfs",
	0x19800202: "mqueue",
	0x67596969: "rpc_pipefs",
}

// pseudoFSOf names the pseudo file system fd's directory is on, or "".
func pseudoFSOf(fd int) string {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(fd, &st); err != nil {
		return ""
	}
	return pseudoFS[int64(st.Type)]
}
