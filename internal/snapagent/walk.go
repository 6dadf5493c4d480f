package snapagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// Why an entry under a captured path is not in the capture: the keys of
// CaptureStats.SkippedByKind.
const (
	skipSymlink    = "symlink"
	skipFifo       = "fifo"
	skipSocket     = "socket"
	skipDevice     = "device"
	skipOther      = "other"
	skipUnreadable = "unreadable"           // permission denied or an I/O error
	skipChanged    = "changed"              // replaced by another file while it was captured
	skipPseudoFS   = "pseudo_filesystem"    // a directory on procfs, sysfs, ...
	skipBadName    = "unrepresentable_name" // a name that is not UTF-8, which JSON cannot carry
	skipTooDeep    = "too_deep"             // nested deeper than maxDepth
	skipCanceled   = "canceled"             // the capture stopped first
)

const (
	// maxDepth bounds directory nesting, and so the descriptors a walk
	// holds open.
	maxDepth = 256
	// pendingFiles bounds the files listed ahead of the one being written,
	// and so the descriptors open for hashing.
	pendingFiles = 256
	// hashBuffer is each hashing worker's read buffer.
	hashBuffer = 256 << 10
)

// errTooManyFiles stops a walk past Config.MaxFiles.
var errTooManyFiles = errors.New("too many files")

// fileJob is one regular file on its way from the walk to the response.
type fileJob struct {
	real   string // where it is, symlinks resolved
	fd     int    // open for hashing, or -1 when its digest was remembered
	listed fileKey
	file   agentapi.File
	reused bool
	skip   string        // non-empty: not captured, for this reason
	done   chan struct{} // closed when file (or skip) is final
}

// walker lists the files under a captured path in order and opens the ones
// to hash; workers hash them meanwhile, and the response writer takes them
// in the order listed.
type walker struct {
	a     *Agent
	ctx   context.Context
	gen   uint64
	out   chan<- *fileJob
	work  chan<- *fileJob
	files int
	skips map[string]int // entries skipped while listing
}

// walkDir walks the directory open as fd (which it closes), whose real
// path is real and whose files are reported under shown.
func (w *walker) walkDir(fd int, real, shown string, depth int) error {
	f := os.NewFile(uintptr(fd), real)
	defer f.Close()
	if depth > maxDepth {
		w.skips[skipTooDeep]++
		return nil
	}
	if kind := pseudoFSOf(fd); kind != "" {
		w.skips[skipPseudoFS]++
		return nil
	}
	entries, err := f.ReadDir(-1)
	if err != nil {
		w.skips[skipUnreadable]++
		w.a.log.Warn("cannot list directory", "path", real, "error", err.Error())
		return nil
	}
	slices.SortFunc(entries, func(x, y fs.DirEntry) int { return strings.Compare(x.Name(), y.Name()) })
	for _, e := range entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if !utf8.ValidString(name) {
			w.skips[skipBadName]++
			continue
		}
		childReal, childShown := joinUnder(real, []string{name}), joinUnder(shown, []string{name})
		switch t := e.Type(); {
		case t.IsDir():
			if isPseudoPath(childReal) {
				w.skips[skipPseudoFS]++
				continue
			}
			w.a.opened(childReal)
			cfd, err := openat(fd, name, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW)
			if err != nil {
				w.skips[skipFor(err)]++
				continue
			}
			if err := w.walkDir(cfd, childReal, childShown, depth+1); err != nil {
				return err
			}
		case t.IsRegular():
			var st syscall.Stat_t
			if err := fstatat(fd, name, &st); err != nil {
				w.skips[skipFor(err)]++
				continue
			}
			if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
				w.skips[kindOf(st.Mode)]++
				continue
			}
			if err := w.file(fd, name, childReal, childShown, &st); err != nil {
				return err
			}
		default:
			w.skips[kindOf(fileTypeBits(t))]++
		}
	}
	return nil
}

// file sends on one regular file, listed in the directory dirfd as name:
// with its remembered digest if it is unchanged, otherwise opened for
// hashing.
func (w *walker) file(dirfd int, name, real, shown string, st *syscall.Stat_t) error {
	w.files++
	if w.files > w.a.cfg.MaxFiles {
		return errTooManyFiles
	}
	k := keyOf(st)
	job := &fileJob{real: real, fd: -1, listed: k, done: make(chan struct{})}
	job.file = agentapi.File{
		Path:    shown,
		Size:    st.Size,
		Mode:    st.Mode & 0o777,
		ModTime: time.Unix(0, k.mtime).UTC(),
	}
	if sum, ok := w.a.cache.lookup(real, k, w.gen); ok {
		job.file.Digest = digestString(sum)
		job.reused = true
		close(job.done)
		return w.send(job)
	}
	w.a.opened(real)
	fd, err := openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY)
	if err != nil {
		job.skip = skipFor(err)
		close(job.done)
		return w.send(job)
	}
	job.fd = fd
	return w.send(job)
}

// send passes job on in order, and to the hashing workers when it has a
// file open.
func (w *walker) send(job *fileJob) error {
	select {
	case w.out <- job:
	case <-w.ctx.Done():
		job.abandon()
		return w.ctx.Err()
	}
	if job.fd < 0 {
		return nil
	}
	select {
	case w.work <- job:
		return nil
	case <-w.ctx.Done():
		job.abandon()
		return w.ctx.Err()
	}
}

// abandon closes a job that will not be hashed.
func (j *fileJob) abandon() {
	if j.fd >= 0 {
		syscall.Close(j.fd)
		j.fd = -1
		j.skip = skipCanceled
		close(j.done)
	}
}

// hash reads a job's file through sha256, checking first that it is still
// the regular file that was listed, and remembers its digest.
func (a *Agent) hash(ctx context.Context, job *fileJob, gen uint64, buf []byte) {
	defer close(job.done)
	defer syscall.Close(job.fd)
	var before syscall.Stat_t
	if err := syscall.Fstat(job.fd, &before); err != nil {
		job.skip = skipUnreadable
		return
	}
	if before.Mode&syscall.S_IFMT != syscall.S_IFREG || uint64(before.Dev) != job.listed.dev || uint64(before.Ino) != job.listed.ino {
		job.skip = skipChanged
		return
	}
	started := time.Now()
	h := sha256.New()
	var n int64
	for reads := 0; ; reads++ {
		if reads%256 == 0 && ctx.Err() != nil { // every 64 MiB of a large file
			job.skip = skipCanceled
			return
		}
		m, err := syscall.Read(job.fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			a.log.Warn("cannot read file", "path", job.real, "error", err.Error())
			job.skip = skipUnreadable
			return
		}
		if m == 0 {
			break
		}
		h.Write(buf[:m])
		n += int64(m)
	}
	var after syscall.Stat_t
	if err := syscall.Fstat(job.fd, &after); err != nil {
		job.skip = skipUnreadable
		return
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	k := keyOf(&after)
	job.file.Digest = digestString(sum)
	job.file.Size = n
	job.file.Mode = after.Mode & 0o777
	job.file.ModTime = time.Unix(0, k.mtime).UTC()
	// The digest may be reused only if the file did not change while it was
	// read, nor so shortly before that a change in the same clock tick
	// would leave its timestamps alone.
	settled := started.Add(-a.racyWindow).UnixNano()
	reusable := k == keyOf(&before) && n == k.size && k.ctime < settled && k.mtime < settled
	a.cache.store(job.real, k, sum, gen, reusable)
}

func digestString(sum [sha256.Size]byte) string {
	return "sha256:" + hex.EncodeToString(sum[:])
}

// skipFor names the reason an entry could not be opened or stat'ed.
func skipFor(err error) string {
	switch {
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENOENT):
		return skipChanged // replaced by a symlink or removed since it was listed
	}
	return skipUnreadable
}

// kindOf names the kind of a non-regular file from its st_mode.
func kindOf(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		return skipSymlink
	case syscall.S_IFIFO:
		return skipFifo
	case syscall.S_IFSOCK:
		return skipSocket
	case syscall.S_IFCHR, syscall.S_IFBLK:
		return skipDevice
	}
	return skipOther
}

// fileTypeBits turns a DirEntry's type into st_mode type bits.
func fileTypeBits(t fs.FileMode) uint32 {
	switch {
	case t&fs.ModeSymlink != 0:
		return syscall.S_IFLNK
	case t&fs.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case t&fs.ModeSocket != 0:
		return syscall.S_IFSOCK
	case t&fs.ModeDevice != 0:
		return syscall.S_IFBLK
	}
	return 0
}

// hashWorkers is how many files are hashed at once: enough to keep a disk
// busy while others are hashed.
func hashWorkers() int {
	return min(max(4, runtime.GOMAXPROCS(0)), 16)
}

// fileStats totals what a walk sent.
type fileStats struct {
	files, reused int
	bytes         int64
	skips         map[string]int
}

func (s *fileStats) skip(kind string, n int) {
	if n == 0 {
		return
	}
	if s.skips == nil {
		s.skips = map[string]int{}
	}
	s.skips[kind] += n
}

// walkFiles lists the files of the directory or regular file open as fd
// and calls emit for each, in walk order, hashing them meanwhile. It stops
// at the first error emit returns. It closes fd.
func (a *Agent) walkFiles(ctx context.Context, fd int, isDir bool, t target, gen uint64, emit func(*agentapi.File) error) (fileStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan *fileJob, pendingFiles)
	work := make(chan *fileJob)
	var workers sync.WaitGroup
	for range hashWorkers() {
		workers.Go(func() {
			buf := make([]byte, hashBuffer)
			for job := range work {
				a.hash(ctx, job, gen, buf)
			}
		})
	}
	w := &walker{a: a, ctx: ctx, gen: gen, out: out, work: work, skips: map[string]int{}}
	walkDone := make(chan error, 1)
	go func() {
		var err error
		if isDir {
			err = w.walkDir(fd, t.real, t.shown, 0)
		} else {
			var st syscall.Stat_t
			if err = syscall.Fstat(fd, &st); err == nil {
				// The file is open already: hand over its descriptor.
				err = w.sendOpen(fd, t, &st)
			} else {
				syscall.Close(fd)
			}
		}
		close(out)
		close(work)
		walkDone <- err
	}()

	var stats fileStats
	var emitErr error
	for job := range out {
		<-job.done
		switch {
		case emitErr != nil:
		case job.skip != "":
			stats.skip(job.skip, 1)
		default:
			if emitErr = emit(&job.file); emitErr != nil {
				cancel()
				continue
			}
			stats.files++
			stats.bytes += job.file.Size
			if job.reused {
				stats.reused++
			}
		}
	}
	workers.Wait()
	walkErr := <-walkDone
	for kind, n := range w.skips {
		stats.skip(kind, n)
	}
	if emitErr != nil {
		return stats, emitErr
	}
	if errors.Is(walkErr, errTooManyFiles) {
		return stats, domain.Errorf(domain.EINVALID, "%s has more than %d files, the agent's limit (--max-files); capture a narrower path", t.shown, a.cfg.MaxFiles)
	}
	return stats, walkErr
}

// sendOpen sends on the captured path itself when it is a regular file,
// already open as fd.
func (w *walker) sendOpen(fd int, t target, st *syscall.Stat_t) error {
	w.files++
	k := keyOf(st)
	job := &fileJob{real: t.real, fd: -1, listed: k, done: make(chan struct{})}
	job.file = agentapi.File{Path: t.shown, Size: st.Size, Mode: st.Mode & 0o777, ModTime: time.Unix(0, k.mtime).UTC()}
	if sum, ok := w.a.cache.lookup(t.real, k, w.gen); ok {
		syscall.Close(fd)
		job.file.Digest = digestString(sum)
		job.reused = true
		close(job.done)
		return w.send(job)
	}
	job.fd = fd
	return w.send(job)
}

// opened tells the test hook about a path about to be opened.
func (a *Agent) opened(path string) {
	if a.onOpen != nil {
		a.onOpen(path)
	}
}
