package snapagent

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"syscall"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

func (a *Agent) handleCapture(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.writeError(w, r, statusError(http.StatusRequestEntityTooLarge, domain.EINVALID, "the request body is larger than %d bytes", maxBodyBytes))
			return
		}
		a.writeError(w, r, statusError(http.StatusBadRequest, domain.EINVALID, "reading the request body: %v", err))
		return
	}
	req, err := ParseCaptureRequest(body)
	if err != nil {
		a.writeError(w, r, statusError(http.StatusBadRequest, domain.EINVALID, "%s", err.Error()))
		return
	}
	t, err := a.resolve(req.Path)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	select {
	case a.captures <- struct{}{}:
		defer func() { <-a.captures }()
	case <-r.Context().Done():
		return
	}
	fd, err := a.openTarget(t)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.streamCapture(w, r, t, fd)
}

// openTarget opens what t names, without following symlinks, and checks
// that it is still a directory (off pseudo file systems) or a regular file.
func (a *Agent) openTarget(t target) (int, error) {
	a.opened(t.real)
	fd, err := openBeneath(t.root.real, t.rel)
	if err != nil {
		return -1, openError(t.shown, t.real, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	switch typ := st.Mode & syscall.S_IFMT; {
	case typ != syscall.S_IFDIR && typ != syscall.S_IFREG:
		syscall.Close(fd)
		return -1, statusError(http.StatusConflict, domain.ECONFLICT, "%s changed while it was opened: it is now a %s", quote(t.shown), kindOf(st.Mode))
	case typ == syscall.S_IFDIR && !t.mode.IsDir(), typ == syscall.S_IFREG && !t.mode.IsRegular():
		syscall.Close(fd)
		return -1, statusError(http.StatusConflict, domain.ECONFLICT, "%s changed while it was opened; try again", quote(t.shown))
	case typ == syscall.S_IFDIR:
		if kind := pseudoFSOf(fd); kind != "" {
			syscall.Close(fd)
			return -1, statusError(http.StatusForbidden, domain.EINVALID, "%s is on a %s file system, which the agent never serves", quote(t.shown), kind)
		}
	}
	return fd, nil
}

// streamCapture writes the capture of t, whose directory or file is open
// as fd, as it is made. It closes fd.
func (a *Agent) streamCapture(w http.ResponseWriter, r *http.Request, t target, fd int) {
	began := time.Now()
	procs, err := a.scanProcesses()
	if err != nil {
		a.log.Warn("cannot list processes", "error", err.Error())
	}
	procs = captured(procs, t)
	before := a.measure(procs)

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Trailer", trailerError)
	w.WriteHeader(http.StatusOK)
	out := newCaptureWriter(w)
	out.field("{", "host", a.cfg.Hostname)
	out.field(",", "path", t.shown)
	out.field(",", "root", t.root.given)
	out.field(",", "captured_at", began.UTC())
	out.raw(`,"files":[`)
	first := true
	emit := func(file *agentapi.File) error {
		if !first {
			out.raw(",")
		}
		first = false
		out.value(file)
		return out.err
	}

	isDir := t.mode.IsDir()
	gen := a.cache.begin()
	stats, err := a.walkFiles(r.Context(), fd, isDir, t, gen, emit)
	if err != nil {
		a.cutShort(w, r, out, t, err)
		return
	}
	if isDir {
		a.cache.finish(t.real, gen)
	}

	// CPU use is measured over the walk, or cpuWindow if that was shorter.
	if wait := a.cpuWindow - time.Since(before.at); wait > 0 {
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
	}
	after := a.measure(procs)
	perPID, perService := usageOf(procs, before, after)
	processes := a.describe(procs, perPID)
	usageSeries, recs := a.usageAndRecommendations(procs, perService)
	out.raw(`],"ports":`)
	out.value(a.ports(procs))
	out.raw(`,"processes":`)
	out.value(processes)
	out.raw(`,"usage":`)
	out.value(usageSeries)
	out.raw(`,"recommendations":`)
	out.value(recs)
	out.raw(`,"stats":`)
	out.value(agentapi.CaptureStats{
		Files:          stats.files,
		Bytes:          stats.bytes,
		ReusedDigests:  stats.reused,
		DurationMillis: time.Since(began).Milliseconds(),
		Skipped:        countAll(stats.skips),
		SkippedByKind:  stats.skips,
	})
	out.raw("}\n")
	if err := out.flush(); err != nil {
		a.log.Info("capture not delivered", "path", t.shown, "error", err.Error())
		return
	}
	a.log.Info("captured", "path", t.shown, "files", stats.files, "bytes", stats.bytes, "reused", stats.reused,
		"skipped", countAll(stats.skips), "processes", len(processes), "duration", time.Since(began).String())
}

// cutShort ends a capture that failed after its response started: the JSON
// stops where it was, so it cannot be mistaken for a whole capture, and
// the Snapagent-Error trailer says why.
func (a *Agent) cutShort(w http.ResponseWriter, r *http.Request, out *captureWriter, t target, err error) {
	if out.err != nil || r.Context().Err() != nil {
		a.log.Info("capture abandoned by the client", "path", t.shown)
		return
	}
	_ = out.flush()
	msg := err.Error()
	if _, ok := errors.AsType[*domain.Error](err); ok {
		a.log.Info("capture cut short", "path", t.shown, "reason", msg)
	} else {
		a.log.Error("capture failed", "path", t.shown, "error", msg)
		msg = "the capture failed on the agent's side; its log says why"
	}
	w.Header().Set(trailerError, msg)
}

// describe turns the captured processes into their agentapi form.
func (a *Agent) describe(procs []*proc, perPID map[int]usage) []agentapi.Process {
	out := make([]agentapi.Process, 0, len(procs))
	for _, p := range procs {
		u, ok := perPID[p.pid]
		if !ok {
			continue // gone during the capture
		}
		out = append(out, agentapi.Process{
			PID:           p.pid,
			Service:       p.service,
			Name:          p.comm,
			Exe:           p.exe,
			Cwd:           p.cwd,
			Cmdline:       redactCmdline(p.cmdline),
			CPUMillicores: u.cpuMillicores,
			MemoryBytes:   u.memoryBytes,
			Env:           a.environment(p.pid),
		})
	}
	slices.SortFunc(out, func(x, y agentapi.Process) int {
		return cmp.Or(cmp.Compare(x.Service, y.Service), cmp.Compare(x.PID, y.PID))
	})
	return out
}

// usageAndRecommendations returns the usage history and a recommendation
// for each service of procs; current is their use measured just now.
func (a *Agent) usageAndRecommendations(procs []*proc, current map[string]usage) ([]agentapi.UsageSeries, []agentapi.Recommendation) {
	var names []string
	for _, p := range procs {
		names = append(names, p.service)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	series := make([]agentapi.UsageSeries, 0, len(names))
	recs := make([]agentapi.Recommendation, 0, len(names))
	for _, name := range names {
		samples := a.history.samples(name)
		series = append(series, agentapi.UsageSeries{Service: name, IntervalSeconds: a.cfg.SampleInterval.Seconds(), Samples: samples})
		recs = append(recs, recommend(name, samples, a.cfg.SampleInterval, current[name]))
	}
	return series, recs
}

func (a *Agent) handleRecommend(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q) != 1 || len(q["path"]) != 1 {
		a.writeError(w, r, statusError(http.StatusBadRequest, domain.EINVALID, "give exactly one query parameter, path: /v1/recommend?path=/var/app"))
		return
	}
	t, err := a.resolve(q.Get("path"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	procs, err := a.scanProcesses()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	procs = captured(procs, t)
	before := a.measure(procs)
	select {
	case <-time.After(a.cpuWindow):
	case <-r.Context().Done():
		return
	}
	_, perService := usageOf(procs, before, a.measure(procs))
	_, recs := a.usageAndRecommendations(procs, perService)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(recs)
}

func countAll(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// captureWriter writes the JSON of a capture piece by piece, remembering
// the first error.
type captureWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
	err error
}

func newCaptureWriter(w io.Writer) *captureWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &captureWriter{bw: bw, enc: enc}
}

func (c *captureWriter) raw(s string) {
	if c.err == nil {
		_, c.err = c.bw.WriteString(s)
	}
}

// value writes v as JSON. (Encode's newline is JSON whitespace.)
func (c *captureWriter) value(v any) {
	if c.err == nil {
		c.err = c.enc.Encode(v)
	}
}

func (c *captureWriter) field(sep, name string, v any) {
	c.raw(sep + `"` + name + `":`)
	c.value(v)
}

func (c *captureWriter) flush() error {
	if c.err == nil {
		c.err = c.bw.Flush()
	}
	return c.err
}
