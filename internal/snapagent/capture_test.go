package snapagent

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

// TestCaptureTree captures a tree and checks every file against its own
// reading of the tree.
func TestCaptureTree(t *testing.T) {
	t.Parallel()
	e := setup(t)
	root := e.root
	big := make([]byte, 3*hashBuffer+17) // several reads' worth
	rand.Read(big)
	files := map[string]string{
		"/empty":                 "",
		"/one":                   "1",
		"/b/z.txt":               "z",
		"/b/a.txt":               "a",
		"/b/c/deep/deeper/x.env": "X=1\n",
		"/big.bin":               string(big),
		"/with space.txt":        "spaced",
		"/ünïcode.txt":           "unicode",
	}
	for name, content := range files {
		write(t, root+name, content)
	}
	if err := os.Chmod(root+"/one", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root+"/b/a.txt", 0o755); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := os.Chtimes(root+"/b/z.txt", mtime, mtime); err != nil {
		t.Fatal(err)
	}
	mkdir(t, root+"/emptydir")
	symlink(t, "one", root+"/link-to-one")
	write(t, root+"/bad\xffname", "not UTF-8")

	start := time.Now()
	c, _ := e.capture(t, root)
	if c.Host != "test-host" || c.Path != root || c.Root != root {
		t.Errorf("host, path, root = %q, %q, %q", c.Host, c.Path, c.Root)
	}
	if c.CapturedAt.Before(start.Add(-time.Second)) || c.CapturedAt.After(time.Now()) {
		t.Errorf("captured_at = %v", c.CapturedAt)
	}
	var gotPaths []string
	for _, f := range c.Files {
		gotPaths = append(gotPaths, trimRoot(f.Path, root))
	}
	wantPaths := []string{"/b/a.txt", "/b/c/deep/deeper/x.env", "/b/z.txt", "/big.bin", "/empty", "/one", "/with space.txt", "/ünïcode.txt"}
	if !slices.Equal(gotPaths, wantPaths) {
		t.Errorf("files in order:\ngot  %q\nwant %q", gotPaths, wantPaths)
	}
	var total int64
	for _, f := range c.Files {
		path := f.Path
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := digestOf(t, path); f.Digest != want {
			t.Errorf("%s: digest = %s, want %s", path, f.Digest, want)
		}
		if f.Size != info.Size() {
			t.Errorf("%s: size = %d, want %d", path, f.Size, info.Size())
		}
		if f.Mode != uint32(info.Mode().Perm()) {
			t.Errorf("%s: mode = %o, want %o", path, f.Mode, info.Mode().Perm())
		}
		if !f.ModTime.Equal(info.ModTime()) {
			t.Errorf("%s: mod_time = %v, want %v", path, f.ModTime, info.ModTime())
		}
		total += f.Size
	}
	byPath := filesByPath(c)
	if f := byPath[root+"/b/z.txt"]; !f.ModTime.Equal(mtime) {
		t.Errorf("z.txt mod_time = %v, want %v", f.ModTime, mtime)
	}
	if byPath[root+"/one"].Mode != 0o600 || byPath[root+"/b/a.txt"].Mode != 0o755 {
		t.Errorf("modes not kept: %+v", byPath)
	}
	want := agentapi.CaptureStats{Files: 8, Bytes: total, Skipped: 2, SkippedByKind: map[string]int{skipSymlink: 1, skipBadName: 1}}
	got := c.Stats
	got.DurationMillis = 0
	if got.Files != want.Files || got.Bytes != want.Bytes || got.ReusedDigests != 0 || got.Skipped != want.Skipped ||
		got.SkippedByKind[skipSymlink] != 1 || got.SkippedByKind[skipBadName] != 1 {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if c.Ports == nil || c.Processes == nil || c.Usage == nil || c.Recommendations == nil {
		t.Errorf("empty lists must be [], not null")
	}
}

// TestCaptureSubpathAndFile captures a directory below the root, a single
// file, and a directory reached through a symlink inside the root: files
// are reported under the path as asked.
func TestCaptureSubpathAndFile(t *testing.T) {
	t.Parallel()
	e := setup(t)
	root := e.root
	write(t, root+"/releases/v2/app.py", "print(2)")
	write(t, root+"/releases/v1/app.py", "print(1)")
	symlink(t, "releases/v2", root+"/current")

	c, _ := e.capture(t, root+"/releases/v1")
	if len(c.Files) != 1 || c.Files[0].Path != root+"/releases/v1/app.py" || c.Root != root {
		t.Errorf("subdirectory capture: %+v", c)
	}
	c, _ = e.capture(t, root+"/releases/v2/app.py")
	if len(c.Files) != 1 || c.Files[0].Path != root+"/releases/v2/app.py" || c.Files[0].Digest != digestOfString("print(2)") {
		t.Errorf("file capture: %+v", c.Files)
	}
	c, _ = e.capture(t, root+"/current/")
	if c.Path != root+"/current" || len(c.Files) != 1 || c.Files[0].Path != root+"/current/app.py" || c.Files[0].Digest != digestOfString("print(2)") {
		t.Errorf("capture through an inside symlink: path %s, files %+v", c.Path, c.Files)
	}
}

// TestRecapture shows that an unchanged file is not hashed again, and that
// a changed, added or removed one is noticed.
func TestRecapture(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.agent.racyWindow = 20 * time.Millisecond
	root := e.root
	for i := range 20 {
		write(t, filepath.Join(root, "d", string(rune('a'+i))), strings.Repeat("x", i*100))
	}
	time.Sleep(50 * time.Millisecond) // out of the racy window

	first, _ := e.capture(t, root)
	if first.Stats.ReusedDigests != 0 || first.Stats.Files != 20 {
		t.Fatalf("first capture stats = %+v", first.Stats)
	}
	second, _ := e.capture(t, root)
	if second.Stats.ReusedDigests != 20 {
		t.Errorf("second capture reused %d digests, want 20", second.Stats.ReusedDigests)
	}
	if !slices.Equal(first.Files, second.Files) {
		t.Errorf("a re-capture of an unchanged tree differs")
	}

	// Same size, same mtime: only the inode's ctime tells.
	changed := root + "/d/c"
	info, _ := os.Stat(changed)
	write(t, changed, strings.Repeat("y", int(info.Size())))
	if err := os.Chtimes(changed, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	write(t, root+"/d/new", "new")
	if err := os.Remove(root + "/d/a"); err != nil {
		t.Fatal(err)
	}
	third, _ := e.capture(t, root)
	if third.Stats.ReusedDigests != 18 || third.Stats.Files != 20 {
		t.Errorf("third capture stats = %+v, want 18 reused of 20", third.Stats)
	}
	byPath := filesByPath(third)
	if got, want := byPath[changed].Digest, digestOf(t, changed); got != want {
		t.Errorf("changed file digest = %s, want %s", got, want)
	}
	if _, ok := byPath[root+"/d/a"]; ok {
		t.Errorf("removed file still listed")
	}
	if got := e.agent.cache.len(); got != 20 {
		t.Errorf("digest cache holds %d files, want 20 (the removed one forgotten)", got)
	}
}

// TestRacyFileNotReused: a file hashed right after it changed is hashed
// again next time, as a change within the same clock tick would not show.
func TestRacyFileNotReused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.agent.racyWindow = time.Hour
	write(t, e.root+"/f", "x")
	e.capture(t, e.root)
	c, _ := e.capture(t, e.root)
	if c.Stats.ReusedDigests != 0 {
		t.Errorf("reused %d digests of files changed within the racy window", c.Stats.ReusedDigests)
	}
	// Its digest still serves blob downloads.
	if resp := e.do(t, http.MethodGet, "/v1/blobs/"+digestOfString("x"), nil); resp.status != http.StatusOK || string(resp.body) != "x" {
		t.Errorf("blob of a racy file: %d %q", resp.status, resp.body)
	}
}

// TestCaptureMaxFiles: a tree over the limit is cut short, with the reason
// in the trailer, and cannot be decoded as a capture.
func TestCaptureMaxFiles(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxFiles = 5 })
	for i := range 10 {
		write(t, filepath.Join(e.root, string(rune('a'+i))), "x")
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/capture", bytes.NewReader(captureBody(e.root)))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var c agentapi.Capture
	if err := decodeInto(body, &c); err == nil {
		t.Errorf("a cut-short capture decoded")
	}
	if msg := resp.Trailer.Get(trailerError); !strings.Contains(msg, "more than 5 files") {
		t.Errorf("trailer %s = %q", trailerError, msg)
	}
}

// TestCaptureRequestLimits covers the request checks around a capture.
func TestCaptureRequestLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct {
		name   string
		method string
		target string
		body   []byte
		status int
	}{
		{"body over 64 KiB", http.MethodPost, "/v1/capture", append([]byte(`{"path":"`), bytes.Repeat([]byte("a"), maxBodyBytes)...), 413},
		{"body just under the limit", http.MethodPost, "/v1/capture", []byte(`{"path":"` + e.root + `"}` + strings.Repeat(" ", maxBodyBytes-len(e.root)-20)), 200},
		{"empty body", http.MethodPost, "/v1/capture", nil, 400},
		{"not JSON", http.MethodPost, "/v1/capture", []byte("path=/etc"), 400},
		{"trailing data", http.MethodPost, "/v1/capture", []byte(`{"path":"` + e.root + `"} {}`), 400},
		{"wrong method", http.MethodGet, "/v1/capture", nil, 405},
		{"recommend by POST", http.MethodPost, "/v1/recommend?path=" + e.root, nil, 405},
		{"recommend without path", http.MethodGet, "/v1/recommend", nil, 400},
		{"recommend with two paths", http.MethodGet, "/v1/recommend?path=" + e.root + "&path=/etc", nil, 400},
		{"unknown endpoint", http.MethodGet, "/v1/nothing", nil, 404},
		{"blob without digest", http.MethodGet, "/v1/blobs/", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(t, tt.method, tt.target, tt.body)
			if resp.status != tt.status {
				t.Errorf("status = %d, want %d: %.300s", resp.status, tt.status, resp.body)
			}
			if tt.status != 200 {
				decodeError(t, resp.body)
			}
		})
	}
}

func decodeInto(body []byte, v any) error {
	dec := newStrictDecoder(body)
	return dec.Decode(v)
}

// TestConcurrentCaptures runs captures and blob downloads side by side,
// for the race detector, and checks that they agree.
func TestConcurrentCaptures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 200 {
		write(t, filepath.Join(e.root, "d"+strconv.Itoa(i%7), "f"+strconv.Itoa(i)), strings.Repeat("z", i))
	}
	first, _ := e.capture(t, e.root)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			path := e.root
			if i%2 == 1 {
				path = e.root + "/d" + strconv.Itoa(i)
			}
			c, _ := e.capture(t, path)
			if path == e.root && !slices.Equal(c.Files, first.Files) {
				t.Errorf("concurrent capture %d differs", i)
			}
			for _, f := range c.Files[:10] {
				if resp := e.do(t, http.MethodGet, "/v1/blobs/"+f.Digest, nil); resp.status != 200 || digestOfString(string(resp.body)) != f.Digest {
					t.Errorf("blob %s: %d", f.Digest, resp.status)
				}
			}
		})
	}
	wg.Wait()
}
