package snapagent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/[pid]/stat.
// Linux fixes it at 100 on every architecture Go supports (it is what
// "getconf CLK_TCK" prints); reading it through sysconf would need cgo.
const clockTicks = 100

// Limits on what is read of one process.
const (
	maxEnvironBytes = 1 << 20
	maxCmdlineBytes = 128 << 10
	maxProcFile     = 64 << 10
)

// proc is a process the agent watches.
type proc struct {
	pid     int
	start   uint64 // starttime in clock ticks after boot: tells a reused pid apart
	comm    string
	exe     string // "" when unreadable
	cwd     string
	cmdline []string
	cgroup  string // its cgroup v2 path, "" when unknown
	matched string // the name of the ServiceMatch it matched, if any
	service string
}

// scanProcesses lists the processes the agent watches: those whose
// executable or working directory lies under a root, and those
// Config.Services names, each with its service.
func (a *Agent) scanProcesses() ([]*proc, error) {
	entries, err := os.ReadDir(a.cfg.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", a.cfg.ProcRoot, err)
	}
	var procs []*proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if p := a.readProcess(pid); p != nil {
			procs = append(procs, p)
		}
	}
	assignServices(procs)
	return procs, nil
}

// readProcess reads what the agent needs of pid, or returns nil when the
// process is not one it watches or is gone.
func (a *Agent) readProcess(pid int) *proc {
	dir := a.procPath(pid)
	p := &proc{pid: pid}
	p.exe = trimDeleted(readlink(dir + "/exe"))
	p.cwd = trimDeleted(readlink(dir + "/cwd"))
	underRoot := false
	for _, r := range a.roots {
		underRoot = underRoot || p.exe != "" && within(p.exe, r.real) || p.cwd != "" && within(p.cwd, r.real)
	}
	if !underRoot && len(a.cfg.Services) == 0 {
		return nil
	}
	raw, err := readLimited(dir+"/cmdline", maxCmdlineBytes)
	if err != nil {
		return nil
	}
	p.cmdline = splitNUL(raw)
	if p.exe == "" && len(p.cmdline) == 0 {
		return nil // a kernel thread
	}
	for _, m := range a.cfg.Services {
		if m.matches(p.exe, p.cmdline) {
			p.matched = m.Name
			break
		}
	}
	if !underRoot && p.matched == "" {
		return nil
	}
	stat, err := readLimited(dir+"/stat", maxProcFile)
	if err != nil {
		return nil
	}
	st, err := parseStat(stat)
	if err != nil {
		a.log.Warn("cannot parse process stat", "pid", pid, "error", err.Error())
		return nil
	}
	p.comm, p.start = st.comm, st.start
	if cg, err := readLimited(dir+"/cgroup", maxProcFile); err == nil {
		p.cgroup = parseCgroupPath(cg)
	}
	return p
}

func (a *Agent) procPath(pid int) string {
	return a.cfg.ProcRoot + "/" + strconv.Itoa(pid)
}

// captured returns the processes that belong to a capture of t: running
// from under it, or named by Config.Services.
func captured(procs []*proc, t target) []*proc {
	var out []*proc
	for _, p := range procs {
		if p.matched != "" || p.exe != "" && within(p.exe, t.real) || p.cwd != "" && within(p.cwd, t.real) {
			out = append(out, p)
		}
	}
	return out
}

// assignServices groups processes into services and names them. Processes
// a ServiceMatch took form the service of that name; the others are grouped
// by command name, executable and working directory (a server's workers
// share all three) and named after the command. A name two groups would
// share gets a suffix: "-2", "-3", ... in the order of (name, executable,
// working directory), so the same processes always get the same names.
func assignServices(procs []*proc) {
	type group struct {
		base, exe, cwd string
		matched        bool
		procs          []*proc
	}
	groups := map[string]*group{}
	for _, p := range procs {
		var key string
		g := &group{}
		if p.matched != "" {
			g.base, g.matched = serviceName(p.matched), true
			key = "match\x00" + g.base
		} else {
			g.base = serviceName(p.comm)
			if g.base == "" {
				g.base = serviceName(path.Base(p.exe))
			}
			if g.base == "" {
				g.base = "process"
			}
			g.exe, g.cwd = p.exe, p.cwd
			key = strings.Join([]string{"proc", g.base, g.exe, g.cwd}, "\x00")
		}
		if have, ok := groups[key]; ok {
			g = have
		} else {
			groups[key] = g
		}
		g.procs = append(g.procs, p)
	}
	ordered := make([]*group, 0, len(groups))
	for _, g := range groups {
		ordered = append(ordered, g)
	}
	slices.SortFunc(ordered, func(x, y *group) int {
		if x.matched != y.matched {
			if x.matched {
				return -1
			}
			return 1
		}
		if c := strings.Compare(x.base, y.base); c != 0 {
			return c
		}
		if c := strings.Compare(x.exe, y.exe); c != 0 {
			return c
		}
		return strings.Compare(x.cwd, y.cwd)
	})
	taken := map[string]bool{}
	for _, g := range ordered {
		name := g.base
		for i := 2; taken[name]; i++ {
			name = fmt.Sprintf("%s-%d", g.base, i)
		}
		taken[name] = true
		for _, p := range g.procs {
			p.service = name
		}
	}
}

// serviceName makes s a Compose-safe, lower-case service name: letters,
// digits, '-', '_' and '.', starting and ending with a letter or digit, at
// most 63 bytes. It returns "" when nothing of s is left.
func serviceName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-_.")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-_.")
	}
	return name
}

// procStat is what the agent reads of /proc/[pid]/stat.
type procStat struct {
	comm  string
	ticks uint64 // utime + stime, in clock ticks
	start uint64
}

// parseStat parses /proc/[pid]/stat. The command name is in parentheses
// and may itself hold spaces and parentheses, so fields are counted from
// the last ')'.
func parseStat(b []byte) (procStat, error) {
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return procStat{}, errors.New("no command name in parentheses")
	}
	fields := strings.Fields(s[close+1:])
	// fields[0] is field 3 of proc(5), "state"; utime is 14, stime 15,
	// starttime 22.
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("%d fields after the command name, want at least 20", len(fields))
	}
	var n [3]uint64
	for i, f := range []int{14, 15, 22} {
		v, err := strconv.ParseUint(fields[f-3], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("field %d: %v", f, err)
		}
		n[i] = v
	}
	return procStat{comm: s[open+1 : close], ticks: n[0] + n[1], start: n[2]}, nil
}

// parseVmRSS returns the resident set size from /proc/[pid]/status.
func parseVmRSS(b []byte) (int64, bool) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb << 10, err == nil
	}
	return 0, false // a zombie or a kernel thread
}

// parseCgroupPath returns the cgroup v2 path from /proc/[pid]/cgroup, the
// line "0::/path".
func parseCgroupPath(b []byte) string {
	for line := range bytes.Lines(b) {
		if p, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte("0::")); ok {
			return string(p)
		}
	}
	return ""
}

// environment reads a process's environment. The value of a variable with
// a secret-looking name, or one holding a URL with a password, is replaced
// by its digest.
func (a *Agent) environment(pid int) []agentapi.EnvVar {
	raw, err := readLimited(a.procPath(pid)+"/environ", maxEnvironBytes)
	if err != nil {
		return []agentapi.EnvVar{}
	}
	vars := []agentapi.EnvVar{}
	for _, entry := range splitNUL(raw) {
		name, value, ok := strings.Cut(entry, "=")
		if !ok || name == "" {
			continue
		}
		if start, _ := urlPassword(value); domain.IsSecretName(name) || start >= 0 {
			vars = append(vars, agentapi.EnvVar{Name: name, Digest: domain.Digest([]byte(value))})
		} else {
			vars = append(vars, agentapi.EnvVar{Name: name, Value: &value})
		}
	}
	slices.SortStableFunc(vars, func(x, y agentapi.EnvVar) int { return strings.Compare(x.Name, y.Name) })
	return vars
}

// redactCmdline replaces secrets in a command line by their digests: the
// value of NAME=VALUE or --NAME=VALUE when NAME looks secret, the argument
// after a secret-looking --NAME, and the password of a URL.
func redactCmdline(args []string) []string {
	out := make([]string, len(args))
	secretNext := false
	for i, arg := range args {
		name, value, hasValue := strings.Cut(arg, "=")
		flagName := strings.TrimLeft(name, "-")
		switch {
		case secretNext && !strings.HasPrefix(arg, "-"):
			out[i] = redacted(arg)
		case hasValue && flagName != "" && domain.IsSecretName(flagName):
			out[i] = name + "=" + redacted(value)
		default:
			out[i] = redactURLPasswords(arg)
		}
		secretNext = strings.HasPrefix(arg, "-") && !hasValue && flagName != "" && domain.IsSecretName(flagName)
	}
	return out
}

func redacted(secret string) string {
	return "<redacted " + domain.Digest([]byte(secret)) + ">"
}

// urlPassword finds the password of the first URL in s that has one
// ("scheme://user:password@host/...") and returns where it starts and
// ends, or -1, -1.
func urlPassword(s string) (start, end int) {
	from := 0
	for {
		i := strings.Index(s[from:], "://")
		if i < 0 {
			return -1, -1
		}
		authStart := from + i + 3
		authority := s[authStart:]
		if stop := strings.IndexAny(authority, "/?# "); stop >= 0 {
			authority = authority[:stop]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			if colon := strings.IndexByte(authority[:at], ':'); colon >= 0 {
				return authStart + colon + 1, authStart + at
			}
		}
		from = authStart
	}
}

// redactURLPasswords replaces the passwords of URLs in s by their digests.
func redactURLPasswords(s string) string {
	var b strings.Builder
	for {
		start, end := urlPassword(s)
		if start < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:start])
		b.WriteString(redacted(s[start:end]))
		s = s[end:]
	}
}

func readlink(p string) string {
	target, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	return target
}

// trimDeleted drops the " (deleted)" the kernel appends to the link of a
// file that has been removed, such as an executable replaced by a deploy.
func trimDeleted(p string) string {
	p = strings.TrimSuffix(p, " (deleted)")
	if !filepath.IsAbs(p) {
		return "" // "anon_inode:...", "/memfd:..." is absolute and harmless
	}
	return filepath.Clean(p)
}

// readLimited reads at most limit bytes of a file; /proc files report
// size 0, so their size cannot be asked first.
func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// splitNUL splits NUL-terminated strings, as in cmdline and environ.
func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return []string{}
	}
	return strings.Split(string(b), "\x00")
}
