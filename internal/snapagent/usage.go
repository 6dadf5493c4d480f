package snapagent

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

// maxServices bounds the services the usage history keeps; with the
// default 360 samples of 40 bytes each, about 15 MiB at most.
const maxServices = 1024

// Run samples the use of the watched processes every SampleInterval into
// the usage history, until ctx ends; it then returns nil. A sample of a
// service is recorded from its second reading on, when there is a first to
// measure CPU time against.
func (a *Agent) Run(ctx context.Context) error {
	ticker := time.NewTicker(a.cfg.SampleInterval)
	defer ticker.Stop()
	prev := a.sampleReading()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cur := a.sampleReading()
		_, services := usageOf(cur.procs, prev, cur)
		a.history.record(cur.at, services)
		prev = cur
	}
}

// sampleReading reads the use of every watched process.
func (a *Agent) sampleReading() reading {
	procs, err := a.scanProcesses()
	if err != nil {
		a.log.Error("sampling usage", "error", err.Error())
	}
	return a.measure(procs)
}

// usage is the CPU and memory use of a process or a service.
type usage struct {
	cpuMillicores int64
	memoryBytes   int64
	// measured says CPU use was measured over an interval, rather than
	// unknown (a process first seen in the later reading).
	measured bool
}

type procReading struct {
	start, ticks uint64
	rss          int64
}

type cgroupReading struct {
	usageUsec uint64
	memory    int64 // memory.current, or -1 when the memory controller is off
	pids      []int // its processes, or nil when there are too many to list
}

// reading is what the agent read of some processes at one moment.
type reading struct {
	at      time.Time
	procs   []*proc
	byPID   map[int]procReading
	cgroups map[string]cgroupReading
}

// measure reads the CPU time and memory of procs and of their cgroups.
func (a *Agent) measure(procs []*proc) reading {
	r := reading{at: time.Now(), procs: procs, byPID: map[int]procReading{}, cgroups: map[string]cgroupReading{}}
	for _, p := range procs {
		dir := a.procPath(p.pid)
		b, err := readLimited(dir+"/stat", maxProcFile)
		if err != nil {
			continue
		}
		st, err := parseStat(b)
		if err != nil || st.start != p.start {
			continue // gone, or its pid reused
		}
		pr := procReading{start: st.start, ticks: st.ticks}
		if b, err := readLimited(dir+"/status", maxProcFile); err == nil {
			pr.rss, _ = parseVmRSS(b)
		}
		r.byPID[p.pid] = pr
		if a.cgroupRoot != "" && p.cgroup != "" && p.cgroup != "/" {
			if _, ok := r.cgroups[p.cgroup]; !ok {
				if cg, ok := a.readCgroup(p.cgroup); ok {
					r.cgroups[p.cgroup] = cg
				}
			}
		}
	}
	return r
}

// readCgroup reads a cgroup v2 group's CPU time, memory and processes.
func (a *Agent) readCgroup(path string) (cgroupReading, bool) {
	dir := filepath.Join(a.cgroupRoot, filepath.Clean("/"+path))
	stat, err := readLimited(dir+"/cpu.stat", maxProcFile)
	if err != nil {
		return cgroupReading{}, false
	}
	cg := cgroupReading{memory: -1}
	found := false
	for line := range bytes.Lines(stat) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("usage_usec ")); ok {
			cg.usageUsec, err = strconv.ParseUint(string(v), 10, 64)
			found = err == nil
		}
	}
	if !found {
		return cgroupReading{}, false
	}
	if b, err := readLimited(dir+"/memory.current", 64); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			cg.memory = v
		}
	}
	if b, err := readLimited(dir+"/cgroup.procs", maxProcFile); err == nil && len(b) < maxProcFile {
		cg.pids = []int{}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				cg.pids = append(cg.pids, pid)
			}
		}
	}
	return cg, true
}

// usageOf works out the use of each process of r1 and of each service they
// form, between readings r0 and r1.
//
// A process's CPU use is its utime+stime delta (/proc/[pid]/stat), its
// memory its VmRSS; when its cgroup holds it alone, the cgroup's cpu.stat
// usage_usec delta and memory.current are used instead, as they also count
// what the kernel does on its behalf and its page cache. A service's use is
// the sum over its processes, except that a cgroup holding only processes
// of the service counts as a whole, by its cgroup figures. Services with no
// CPU measurement (every process new since r0) are left out of services.
func usageOf(procs []*proc, r0, r1 reading) (perPID map[int]usage, services map[string]usage) {
	perPID = map[int]usage{}
	services = map[string]usage{}
	wall := r1.at.Sub(r0.at)
	byService := map[string]map[int]bool{}
	for _, p := range procs {
		if byService[p.service] == nil {
			byService[p.service] = map[int]bool{}
		}
		byService[p.service][p.pid] = true
	}
	dedicated := func(cgroup string, members map[int]bool) (cgroupReading, bool) {
		c1, ok := r1.cgroups[cgroup]
		if !ok || len(c1.pids) == 0 {
			return c1, false
		}
		for _, pid := range c1.pids {
			if !members[pid] {
				return c1, false
			}
		}
		return c1, true
	}
	cgroupUse := func(cgroup string, c1 cgroupReading, fallbackMem int64) usage {
		u := usage{memoryBytes: c1.memory}
		if u.memoryBytes < 0 {
			u.memoryBytes = fallbackMem
		}
		if c0, ok := r0.cgroups[cgroup]; ok && wall > 0 && c1.usageUsec >= c0.usageUsec {
			u.cpuMillicores = millicores(time.Duration(c1.usageUsec-c0.usageUsec)*time.Microsecond, wall)
			u.measured = true
		}
		return u
	}

	for _, p := range procs {
		p1, ok := r1.byPID[p.pid]
		if !ok {
			continue
		}
		u := usage{memoryBytes: p1.rss}
		if p0, ok := r0.byPID[p.pid]; ok && p0.start == p1.start && wall > 0 && p1.ticks >= p0.ticks {
			u.cpuMillicores = millicores(time.Duration(p1.ticks-p0.ticks)*time.Second/clockTicks, wall)
			u.measured = true
		}
		if c1, ok := dedicated(p.cgroup, map[int]bool{p.pid: true}); ok {
			if cu := cgroupUse(p.cgroup, c1, p1.rss); cu.measured || !u.measured {
				u = cu
			}
		}
		perPID[p.pid] = u
	}

	for service, members := range byService {
		var total usage
		counted := map[string]bool{} // cgroups counted as a whole
		for _, p := range procs {
			if p.service != service {
				continue
			}
			if p.cgroup != "" && p.cgroup != "/" {
				if counted[p.cgroup] {
					continue
				}
				if c1, ok := dedicated(p.cgroup, members); ok {
					cu := cgroupUse(p.cgroup, c1, 0)
					if cu.measured {
						counted[p.cgroup] = true
						total.add(cu)
						continue
					}
				}
			}
			if u, ok := perPID[p.pid]; ok {
				total.add(u)
			}
		}
		if total.measured {
			services[service] = total
		}
	}
	return perPID, services
}

func (u *usage) add(v usage) {
	u.cpuMillicores += v.cpuMillicores
	u.memoryBytes += v.memoryBytes
	u.measured = u.measured || v.measured
}

// millicores is CPU time cpu spent over wall, in thousandths of a core.
func millicores(cpu, wall time.Duration) int64 {
	return int64(float64(cpu) / float64(wall) * 1000)
}

// findCgroupRoot finds where the cgroup v2 hierarchy is mounted (on a
// hybrid host, /sys/fs/cgroup/unified), unless Config.CgroupRoot says.
func (a *Agent) findCgroupRoot() string {
	switch a.cfg.CgroupRoot {
	case "none":
		return ""
	case "":
	default:
		return a.cfg.CgroupRoot
	}
	f, err := os.Open(a.cfg.ProcRoot + "/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	return cgroup2Mount(bufio.NewScanner(f))
}

// cgroup2Mount returns the mount point of the first cgroup2 file system in
// mountinfo lines: "36 35 0:31 / /sys/fs/cgroup rw shared:9 - cgroup2 ...".
func cgroup2Mount(sc *bufio.Scanner) string {
	for sc.Scan() {
		before, after, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, fsType := strings.Fields(before), strings.Fields(after)
		if len(fields) >= 5 && len(fsType) > 0 && fsType[0] == "cgroup2" && fields[3] == "/" {
			return unescapeMountinfo(fields[4])
		}
	}
	return ""
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a path
// in mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// history keeps the last samples of each service's use in a ring of fixed
// size, and forgets a service not seen for retain.
type history struct {
	mu          sync.Mutex
	size        int
	maxServices int
	retain      time.Duration
	series      map[string]*ring
}

type ring struct {
	buf     []agentapi.UsageSample // allocated once, at full size
	next, n int
	last    time.Time
}

func newHistory(size, maxServices int, retain time.Duration) *history {
	return &history{size: size, maxServices: maxServices, retain: retain, series: map[string]*ring{}}
}

// record adds one sample per service, taken at at.
func (h *history) record(at time.Time, services map[string]usage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, r := range h.series {
		if at.Sub(r.last) > h.retain {
			delete(h.series, name)
		}
	}
	for name, u := range services {
		r := h.series[name]
		if r == nil {
			if len(h.series) >= h.maxServices {
				h.evictStalestLocked()
			}
			r = &ring{buf: make([]agentapi.UsageSample, h.size)}
			h.series[name] = r
		}
		r.buf[r.next] = agentapi.UsageSample{At: at.UTC(), CPUMillicores: u.cpuMillicores, MemoryBytes: u.memoryBytes}
		r.next = (r.next + 1) % h.size
		r.n = min(r.n+1, h.size)
		r.last = at
	}
}

func (h *history) evictStalestLocked() {
	var stalest string
	var when time.Time
	for name, r := range h.series {
		if stalest == "" || r.last.Before(when) {
			stalest, when = name, r.last
		}
	}
	delete(h.series, stalest)
}

// samples returns a service's samples, oldest first.
func (h *history) samples(service string) []agentapi.UsageSample {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.series[service]
	if r == nil {
		return []agentapi.UsageSample{}
	}
	out := make([]agentapi.UsageSample, 0, r.n)
	for i := range r.n {
		out = append(out, r.buf[(r.next-r.n+i+h.size)%h.size])
	}
	return out
}
