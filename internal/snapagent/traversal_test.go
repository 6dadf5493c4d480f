package snapagent

import (
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTraversalCorpus asks for captures of paths that lead, or try to lead,
// outside the root. Each must be refused with a clear 4xx error, and the
// agent must not open anything outside the root while refusing.
func TestTraversalCorpus(t *testing.T) {
	t.Parallel()
	e := setup(t)
	root, base := e.root, e.base
	write(t, root+"/sub/file.txt", "inside")
	symlink(t, "/etc", root+"/link-etc")
	symlink(t, "chain2", root+"/chain1")
	symlink(t, root+"/chain3", root+"/chain2")
	symlink(t, "/etc/passwd", root+"/chain3")
	symlink(t, "../root2", root+"/link-sibling")
	symlink(t, base+"/root2", root+"/link-sibling-abs")
	symlink(t, "../root/sub", root+"/link-up-and-back")
	symlink(t, "/proc/self", root+"/link-proc")
	symlink(t, "/dev/null", root+"/link-devnull")
	symlink(t, "../../../../../../..", root+"/link-dotdot")
	symlink(t, "loop2", root+"/loop1")
	symlink(t, "loop1", root+"/loop2")
	symlink(t, base+"/outside/secret.txt", root+"/sub/deep-link")
	if err := syscall.Mkfifo(root+"/fifo", 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", root+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	haveDevice := syscall.Mknod(root+"/null-device", syscall.S_IFCHR|0o666, 1<<8|3) == nil

	tests := []struct {
		name   string
		path   string
		body   string // a raw request body instead of path
		status int
	}{
		{name: "empty", path: "", status: 400},
		{name: "relative", path: "relative/path", status: 400},
		{name: "relative dotdot", path: "../etc", status: 400},
		{name: "backslashes", path: `..\..\etc`, status: 400},
		{name: "dotdot to sibling", path: root + "/../root2", status: 400},
		{name: "dotdot through subdirectory", path: root + "/sub/../../root2/secret.txt", status: 400},
		{name: "trailing dotdot", path: root + "/..", status: 400},
		{name: "dotdot back inside", path: root + "/sub/..", status: 400},
		{name: "dot then dotdot", path: root + "/./../outside", status: 400},
		{name: "json-escaped dotdot", body: `{"path":"` + root + `/\u002e\u002e/root2"}`, status: 400},
		{name: "percent-encoded dotdot is a literal name", path: root + "/%2e%2e/root2", status: 404},
		{name: "absolute escape", path: "/etc", status: 403},
		{name: "absolute escape to a file", path: "/etc/passwd", status: 403},
		{name: "double slash", path: "//etc", status: 403},
		{name: "filesystem root", path: "/", status: 403},
		{name: "sibling with the root as prefix", path: base + "/root2", status: 403},
		{name: "file in sibling with the root as prefix", path: root + "2/secret.txt", status: 403},
		{name: "symlink to /etc", path: root + "/link-etc", status: 403},
		{name: "through a symlink to /etc", path: root + "/link-etc/passwd", status: 403},
		{name: "symlink chain leading out", path: root + "/chain1", status: 403},
		{name: "relative symlink to sibling", path: root + "/link-sibling", status: 403},
		{name: "absolute symlink to sibling with common prefix", path: root + "/link-sibling-abs/secret.txt", status: 403},
		{name: "symlink out and back in", path: root + "/link-up-and-back", status: 403},
		{name: "symlink to /proc/self", path: root + "/link-proc", status: 403},
		{name: "symlink to /dev/null", path: root + "/link-devnull", status: 403},
		{name: "symlink of dotdots", path: root + "/link-dotdot/etc", status: 403},
		{name: "symlink in subdirectory to outside file", path: root + "/sub/deep-link", status: 403},
		{name: "symlink loop", path: root + "/loop1", status: 400},
		{name: "proc self", path: "/proc/self", status: 403},
		{name: "proc environ", path: "/proc/self/environ", status: 403},
		{name: "sys", path: "/sys/kernel", status: 403},
		{name: "dev null", path: "/dev/null", status: 403},
		{name: "fifo inside the root", path: root + "/fifo", status: 400},
		{name: "unix socket inside the root", path: root + "/sock", status: 400},
		{name: "NUL byte", path: root + "\x00/../../etc", status: 400},
		{name: "NUL byte alone", path: root + "/sub\x00", status: 400},
		{name: "very long path", path: root + "/" + strings.Repeat("a/", 3000), status: 400},
		{name: "missing file", path: root + "/missing", status: 404},
		{name: "file used as directory", path: root + "/sub/file.txt/x", status: 404},
		{name: "unknown field", body: `{"path":"` + root + `","follow":true}`, status: 400},
		{name: "path not a string", body: `{"path":["/etc"]}`, status: 400},
		{name: "path twice", body: `{"path":"` + root + `","path":"/etc"}`, status: 400},
	}
	if haveDevice {
		tests = append(tests, struct {
			name   string
			path   string
			body   string
			status int
		}{name: "device node inside the root", path: root + "/null-device", status: 400})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if tt.body == "" {
				body = captureBody(tt.path)
			}
			resp := e.do(t, http.MethodPost, "/v1/capture", body)
			if resp.status != tt.status {
				t.Errorf("capture status = %d, want %d: %s", resp.status, tt.status, resp.body)
			}
			apiErr := decodeError(t, resp.body)
			t.Logf("%d %s: %s", resp.status, apiErr.Code, apiErr.Message)
			if containsSentinel(resp.body) {
				t.Errorf("the response holds what lies outside the root")
			}
			if tt.body == "" {
				resp := e.do(t, http.MethodGet, "/v1/recommend?path="+url.QueryEscape(tt.path), nil)
				if resp.status != tt.status {
					t.Errorf("recommend status = %d, want %d: %s", resp.status, tt.status, resp.body)
				}
			}
		})
	}
	for _, p := range []string{root + "/fifo", root + "/sock", root + "/null-device"} {
		if e.wasOpened(p) {
			t.Errorf("%s was opened", p)
		}
	}
	if out := e.openedOutside(); len(out) > 0 {
		t.Errorf("opened outside the root: %v", out)
	}
}

// TestWalkSkipsWhatLeadsOut captures a root full of hostile entries: the
// capture lists only the regular files inside, counts the rest, and opens
// nothing outside.
func TestWalkSkipsWhatLeadsOut(t *testing.T) {
	t.Parallel()
	e := setup(t)
	root := e.root
	write(t, root+"/app/config.yaml", "port: 80\n")
	symlink(t, "/etc", root+"/app/link-etc")
	symlink(t, "/etc/passwd", root+"/app/passwd")
	symlink(t, e.base+"/root2/secret.txt", root+"/app/secret")
	symlink(t, "config.yaml", root+"/app/inside-link")
	symlink(t, "/proc/self", root+"/app/proc")
	if err := syscall.Mkfifo(root+"/app/fifo", 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", root+"/app/sock")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wantSkips := map[string]int{skipSymlink: 5, skipFifo: 1, skipSocket: 1}
	if syscall.Mknod(root+"/app/null", syscall.S_IFCHR|0o666, 1<<8|3) == nil {
		wantSkips[skipDevice] = 1
	}

	c, body := e.capture(t, root)
	if len(c.Files) != 1 || c.Files[0].Path != root+"/app/config.yaml" {
		t.Errorf("files = %+v, want only app/config.yaml", c.Files)
	}
	for kind, n := range wantSkips {
		if got := c.Stats.SkippedByKind[kind]; got != n {
			t.Errorf("skipped %s = %d, want %d (all: %v)", kind, got, n, c.Stats.SkippedByKind)
		}
	}
	if containsSentinel(body) {
		t.Errorf("the capture holds what lies outside the root")
	}
	for _, name := range []string{"fifo", "sock", "null", "passwd", "secret", "link-etc", "proc"} {
		if p := filepath.Join(root, "app", name); e.wasOpened(p) {
			t.Errorf("%s was opened", p)
		}
	}
	if out := e.openedOutside(); len(out) > 0 {
		t.Errorf("opened outside the root: %v", out)
	}
}

// TestOpenBeneathRefusesSwappedSymlink shows the guard against a directory
// swapped for a symlink after the path was resolved: opening fails rather
// than leading out.
func TestOpenBeneathRefusesSwappedSymlink(t *testing.T) {
	t.Parallel()
	e := setup(t)
	write(t, e.root+"/dir/file", "x")
	rt, rel, _ := e.agent.locate(e.root + "/dir/file")
	// Resolved while dir was a directory; now it is a symlink out.
	if err := renameToSymlink(e.root+"/dir", e.base+"/outside"); err != nil {
		t.Fatal(err)
	}
	write(t, e.base+"/outside/file", sentinel)
	fd, err := openBeneath(rt.real, rel)
	if err == nil {
		syscall.Close(fd)
		t.Fatal("opened a path through a symlink")
	}
	if !strings.Contains(err.Error(), "not a directory") && !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("error = %v, want ENOTDIR or ELOOP", err)
	}
}

// renameToSymlink replaces dir by a symlink to target.
func renameToSymlink(dir, target string) error {
	if err := syscall.Rename(dir, dir+".old"); err != nil {
		return err
	}
	return syscall.Symlink(target, dir)
}

// TestBlobCorpus asks for blobs by hostile digests: none is served.
func TestBlobCorpus(t *testing.T) {
	t.Parallel()
	e := setup(t)
	write(t, e.root+"/a.txt", "a")
	e.capture(t, e.root)
	unknown := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		digest string
		status int
	}{
		{"unknown digest", "sha256:" + unknown, 404},
		{"digest of a file outside", digestOfString(sentinel), 404},
		{"upper-case hex", "sha256:" + strings.ToUpper(unknown), 400},
		{"short", "sha256:abc", 400},
		{"other algorithm", "md5:" + unknown[:32], 400},
		{"no algorithm", unknown, 400},
		{"path", "etc%2Fpasswd", 400},
		{"encoded dotdot", "%2e%2e", 400},
		{"NUL", "sha256:" + unknown[:63] + "%00", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(t, http.MethodGet, "/v1/blobs/"+tt.digest, nil)
			if resp.status != tt.status {
				t.Errorf("status = %d, want %d: %s", resp.status, tt.status, resp.body)
			}
			decodeError(t, resp.body)
		})
	}
	// Paths the mux cleans are redirected, never served.
	resp := e.do(t, http.MethodGet, "/v1/blobs/../../etc/passwd", nil)
	if resp.status == http.StatusOK || containsSentinel(resp.body) || strings.Contains(string(resp.body), "root:") {
		t.Errorf("dotdot blob path: status %d: %s", resp.status, resp.body)
	}
	if out := e.openedOutside(); len(out) > 0 {
		t.Errorf("opened outside the root: %v", out)
	}
}

// TestRootSlash serves the whole file system, as an operator might: /proc,
// /sys and /dev stay refused, directly and through symlinks.
func TestRootSlash(t *testing.T) {
	t.Parallel()
	a, err := New(Config{Roots: []string{"/"}, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	symlink(t, "/proc/self", dir+"/link-proc")
	symlink(t, "/dev", dir+"/link-dev")
	symlink(t, "/etc", dir+"/link-etc")
	tests := []struct {
		path   string
		status int
	}{
		{"/proc/self/environ", 403},
		{"/proc", 403},
		{"/sys/kernel", 403},
		{"/dev/null", 403},
		{dir + "/link-proc", 403},
		{dir + "/link-dev/null", 403},
		{dir + "/link-etc", 0},
		{"/etc", 0},
	}
	for _, tt := range tests {
		_, err := a.resolve(tt.path)
		status := 0
		if he, ok := err.(*httpError); ok {
			status = he.status
		} else if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if status != tt.status {
			t.Errorf("resolve(%s): status %d (%v), want %d", tt.path, status, err, tt.status)
		}
	}
}

// TestPseudoFS recognises a directory on procfs, which a walk never
// enters wherever it is mounted.
func TestPseudoFS(t *testing.T) {
	t.Parallel()
	fd, err := syscall.Open("/proc", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Skip("no /proc")
	}
	defer syscall.Close(fd)
	if got := pseudoFSOf(fd); got != "proc" {
		t.Errorf("pseudoFSOf(/proc) = %q, want proc", got)
	}
	tmp, err := syscall.Open(t.TempDir(), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(tmp)
	if got := pseudoFSOf(tmp); got != "" {
		t.Errorf("pseudoFSOf(temp dir) = %q, want none", got)
	}
}
