package snapagent

import (
	"crypto/sha256"
	"sync"
	"syscall"
)

// fileKey identifies one version of a file: if none of these changed, its
// contents did not either (short of deliberate timestamp forgery, which
// ctime resists: it cannot be set from user space).
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

func keyOf(st *syscall.Stat_t) fileKey {
	return fileKey{
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}
}

type cacheEntry struct {
	key fileKey
	sum [sha256.Size]byte
	gen uint64 // the capture that last saw the file
	// reusable is false for a file that changed too recently to trust its
	// key (see doc.go): its digest serves blob downloads, not re-captures.
	reusable bool
}

// digestCache remembers the digests of files captured before, by real path,
// and where a file with a given digest was last seen, for blob downloads.
// It holds at most max files; each entry costs about 150 bytes plus its
// path.
type digestCache struct {
	mu       sync.Mutex
	max      int
	gen      uint64
	byPath   map[string]cacheEntry
	byDigest map[[sha256.Size]byte]string
}

func newDigestCache(max int) *digestCache {
	return &digestCache{max: max, byPath: map[string]cacheEntry{}, byDigest: map[[sha256.Size]byte]string{}}
}

// begin starts a capture and returns its generation.
func (c *digestCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	return c.gen
}

// lookup returns the remembered digest of the file at path when it is the
// same version, and marks it seen by capture gen.
func (c *digestCache) lookup(path string, k fileKey, gen uint64) ([sha256.Size]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byPath[path]
	if !ok || !e.reusable || e.key != k {
		return [sha256.Size]byte{}, false
	}
	e.gen = max(e.gen, gen)
	c.byPath[path] = e
	if _, ok := c.byDigest[e.sum]; !ok {
		c.byDigest[e.sum] = path
	}
	return e.sum, true
}

// store remembers the digest of a file capture gen hashed, for re-captures
// when reusable. When the cache is full it first forgets files no capture
// since gen has seen.
func (c *digestCache) store(path string, k fileKey, sum [sha256.Size]byte, gen uint64, reusable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byPath[path]; !ok && len(c.byPath) >= c.max {
		c.evictLocked(gen)
		if len(c.byPath) >= c.max {
			return
		}
	}
	if e, ok := c.byPath[path]; ok {
		gen = max(gen, e.gen)
	}
	c.byPath[path] = cacheEntry{key: k, sum: sum, gen: gen, reusable: reusable}
	c.byDigest[sum] = path
}

// evictLocked forgets files older captures saw, down to 7/8 of the limit,
// so that a full cache does not sweep on every store.
func (c *digestCache) evictLocked(gen uint64) {
	target := c.max - c.max/8 - 1
	for p, e := range c.byPath {
		if len(c.byPath) <= target {
			return
		}
		if e.gen < gen {
			c.deleteLocked(p, e)
		}
	}
}

func (c *digestCache) deleteLocked(path string, e cacheEntry) {
	delete(c.byPath, path)
	if c.byDigest[e.sum] == path {
		delete(c.byDigest, e.sum)
	}
}

// finish ends capture gen of the directory real, which completed: files
// under it the capture did not see are gone (or no longer regular files),
// so they are forgotten. An entry's generation only grows, so a file that
// this capture or a later one saw is kept, whatever order concurrent
// captures touch it in.
func (c *digestCache) finish(real string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, e := range c.byPath {
		if e.gen < gen && within(p, real) {
			c.deleteLocked(p, e)
		}
	}
}

// blob returns where a file with the digest sum was last seen.
func (c *digestCache) blob(sum [sha256.Size]byte) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byDigest[sum]
	return p, ok
}

// forget drops what is remembered of path, which no longer has the digest
// it was remembered with.
func (c *digestCache) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byPath[path]; ok {
		c.deleteLocked(path, e)
	}
}

func (c *digestCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byPath)
}
