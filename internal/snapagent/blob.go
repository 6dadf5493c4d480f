package snapagent

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// blobChunk is how much of a blob is read, hashed and sent at a time; the
// last chunk is held back until the whole file has been hashed.
const blobChunk = 256 << 10

// parseDigest reads "sha256:<64 lower-case hex digits>".
func parseDigest(s string) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	hexSum, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexSum) != 2*sha256.Size || strings.ToLower(hexSum) != hexSum {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(hexSum))
	return sum, err == nil
}

// handleBlob serves the bytes of a file a capture listed with the digest
// asked for (see the package documentation for how they are checked).
func (a *Agent) handleBlob(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	want, ok := parseDigest(digest)
	if !ok {
		a.writeError(w, r, statusError(http.StatusBadRequest, domain.EINVALID, "%s is not a digest: want sha256:<64 lower-case hex digits>", quote(digest)))
		return
	}
	real, ok := a.cache.blob(want)
	if !ok {
		a.writeError(w, r, statusError(http.StatusNotFound, domain.ENOTFOUND, "no captured file has digest %s: capture the path that holds it first", digest))
		return
	}
	rt, rel, ok := a.rootOf(real)
	if !ok || isPseudoPath(real) {
		a.cache.forget(real)
		a.writeError(w, r, statusError(http.StatusNotFound, domain.ENOTFOUND, "no captured file has digest %s any more", digest))
		return
	}
	a.opened(real)
	fd, err := openBeneath(rt.real, rel)
	if err != nil {
		a.cache.forget(real)
		a.writeError(w, r, a.blobGone(digest, err))
		return
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		a.cache.forget(real)
		a.writeError(w, r, statusError(http.StatusConflict, domain.ECONFLICT, "the file captured with digest %s has changed since; capture again", digest))
		return
	}
	a.sendVerified(w, r, fd, st.Size, want, digest, real)
}

func (a *Agent) blobGone(digest string, err error) error {
	if he, ok := openError(digest, digest, err).(*httpError); ok && he.status == http.StatusNotFound {
		return statusError(http.StatusNotFound, domain.ENOTFOUND, "the file captured with digest %s no longer exists; capture again", digest)
	}
	return statusError(http.StatusConflict, domain.ECONFLICT, "the file captured with digest %s can no longer be opened safely (%v); capture again", digest, pathErr(err))
}

// sendVerified sends size bytes of fd, hashing them as they go, and holds
// back the last chunks until the hash is known, so the body is never
// complete unless it has the digest. When the file no longer has
// the digest want, nothing more is sent: before the first byte that is a
// 409; after it, the connection is cut, which the client sees as a body
// shorter than Content-Length.
func (a *Agent) sendVerified(w http.ResponseWriter, r *http.Request, fd int, size int64, want [sha256.Size]byte, digest, real string) {
	h := sha256.New()
	bufs := [2][]byte{make([]byte, blobChunk), make([]byte, blobChunk)}
	var pending []byte // read and hashed, not yet sent
	var total int64
	started := false
	start := func() {
		started = true
		hdr := w.Header()
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set("Content-Length", strconv.FormatInt(size, 10))
		hdr.Set("ETag", `"`+digest+`"`)
		hdr.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(want[:])+":")
		w.WriteHeader(http.StatusOK)
	}
	var tail []byte // the last read, held back with pending
	for i := 0; ; i++ {
		buf := bufs[i%2]
		// Read no further than one byte past the size, to notice growth.
		if room := size - total + 1; room < int64(len(buf)) {
			buf = buf[:room]
		}
		n, err := readFull(fd, buf)
		if err != nil {
			a.log.Error("reading blob", "path", real, "error", err.Error())
			if !started {
				a.writeError(w, r, err)
				return
			}
			panic(http.ErrAbortHandler)
		}
		h.Write(buf[:n])
		total += int64(n)
		if n < len(buf) || total > size {
			tail = buf[:n]
			break
		}
		if pending != nil {
			if !started {
				start()
			}
			if _, err := w.Write(pending); err != nil {
				return // the client went away
			}
		}
		pending = buf[:n]
	}
	var got [sha256.Size]byte
	h.Sum(got[:0])
	if got != want || total != size {
		a.cache.forget(real)
		a.log.Info("blob changed since its capture", "path", real, "digest", digest)
		if !started {
			a.writeError(w, r, statusError(http.StatusConflict, domain.ECONFLICT, "the file captured with digest %s has changed since; capture again", digest))
			return
		}
		panic(http.ErrAbortHandler)
	}
	if !started {
		start()
	}
	if _, err := w.Write(pending); err == nil {
		_, _ = w.Write(tail)
	}
}

// readFull reads into buf until it is full or the file ends.
func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}
