package snapagent

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
)

func TestBlobRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	big := make([]byte, 5*blobChunk+123)
	rand.Read(big)
	contents := map[string][]byte{
		"/empty":        {},
		"/small.txt":    []byte("small"),
		"/exact.bin":    big[:blobChunk],
		"/twice.bin":    big[:2*blobChunk],
		"/big/data.bin": big,
	}
	for name, b := range contents {
		write(t, e.root+name, string(b))
	}
	c, _ := e.capture(t, e.root)
	if len(c.Files) != len(contents) {
		t.Fatalf("captured %d files, want %d", len(c.Files), len(contents))
	}
	for _, f := range c.Files {
		t.Run(trimRoot(f.Path, e.root), func(t *testing.T) {
			resp := e.do(t, http.MethodGet, "/v1/blobs/"+f.Digest, nil)
			if resp.status != http.StatusOK || resp.err != nil {
				t.Fatalf("status %d, read error %v: %.200s", resp.status, resp.err, resp.body)
			}
			want := contents[trimRoot(f.Path, e.root)]
			if !bytes.Equal(resp.body, want) {
				t.Errorf("got %d bytes, want %d", len(resp.body), len(want))
			}
			if got := resp.header.Get("Content-Length"); got != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length = %s", got)
			}
			if got := resp.header.Get("ETag"); got != `"`+f.Digest+`"` {
				t.Errorf("ETag = %s", got)
			}
			if digestOfString(string(resp.body)) != f.Digest {
				t.Errorf("the body does not have the digest asked for")
			}
		})
	}
}

// TestBlobChanged: a file changed since its capture is never served as if
// it were the captured one.
func TestBlobChanged(t *testing.T) {
	t.Parallel()
	e := setup(t)
	big := make([]byte, 4*blobChunk)
	rand.Read(big)
	write(t, e.root+"/small", "before")
	write(t, e.root+"/big", string(big))
	write(t, e.root+"/grows", string(big[:2*blobChunk]))
	write(t, e.root+"/gone", "gone")
	write(t, e.root+"/swapped", "swapped")
	c, _ := e.capture(t, e.root)
	digests := map[string]string{}
	for _, f := range c.Files {
		digests[trimRoot(f.Path, e.root)] = f.Digest
	}

	// A small file that changed: nothing was sent yet, so a plain 409.
	write(t, e.root+"/small", "after!")
	resp := e.do(t, http.MethodGet, "/v1/blobs/"+digests["/small"], nil)
	if resp.status != http.StatusConflict {
		t.Errorf("changed small file: status %d: %s", resp.status, resp.body)
	} else {
		decodeError(t, resp.body)
	}

	// A large file whose last byte changed: the body is cut short.
	big[len(big)-1] ^= 0xff
	write(t, e.root+"/big", string(big))
	resp = e.do(t, http.MethodGet, "/v1/blobs/"+digests["/big"], nil)
	if resp.err == nil {
		t.Errorf("changed large file: a complete body of %d bytes (status %d)", len(resp.body), resp.status)
	}

	// A file that grew past its captured size, its first bytes unchanged.
	f, err := os.OpenFile(e.root+"/grows", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	f.Close()
	resp = e.do(t, http.MethodGet, "/v1/blobs/"+digests["/grows"], nil)
	if resp.err == nil && resp.status == http.StatusOK {
		t.Errorf("grown file: a complete body of %d bytes", len(resp.body))
	}

	// Removed, or replaced by a symlink out of the root.
	os.Remove(e.root + "/gone")
	if resp := e.do(t, http.MethodGet, "/v1/blobs/"+digests["/gone"], nil); resp.status != http.StatusNotFound {
		t.Errorf("removed file: status %d: %s", resp.status, resp.body)
	}
	os.Remove(e.root + "/swapped")
	symlink(t, e.base+"/outside/secret.txt", e.root+"/swapped")
	resp = e.do(t, http.MethodGet, "/v1/blobs/"+digests["/swapped"], nil)
	if resp.status == http.StatusOK || containsSentinel(resp.body) {
		t.Errorf("file swapped for a symlink: status %d: %s", resp.status, resp.body)
	}
	if out := e.openedOutside(); len(out) > 0 {
		t.Errorf("opened outside the root: %v", out)
	}

	// A refused blob is forgotten: the next request is a 404 at once.
	if resp := e.do(t, http.MethodGet, "/v1/blobs/"+digests["/small"], nil); resp.status != http.StatusNotFound {
		t.Errorf("blob asked again after a change: status %d", resp.status)
	}
}

// TestBlobStreamsLargeFile reads a blob through a small buffer, as a
// client materialising files would.
func TestBlobStreamsLargeFile(t *testing.T) {
	t.Parallel()
	e := setup(t)
	big := make([]byte, 8<<20)
	rand.Read(big)
	write(t, e.root+"/big", string(big))
	c, _ := e.capture(t, e.root)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/blobs/"+c.Files[0].Digest, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 512))
	if err != nil || n != int64(len(big)) {
		t.Errorf("read %d bytes, error %v", n, err)
	}
}
