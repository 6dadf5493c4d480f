package live

import (
	"cmp"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// A capture becomes a snapshot by these rules:
//
//   - Services: one per distinct Process.Service, sorted by name. A live
//     process has no image, so a service's Image is "exe:" followed by the
//     executable of its first process (lowest pid): it says what runs, and
//     never equals a template's image, so a live service and a template's
//     are never taken for the same thing by their image alone.
//   - Ports: the listening ports the agent attributes to the service, with
//     Host = Container = the port the process listens on (a live process
//     is bound to the host's port directly), one per protocol and port.
//   - Requested: the agent's recommended desired CPU and memory for the
//     service (from its usage history); without one, its current use.
//     Minimum = Requested: a production service keeps what it needs until
//     its provider concedes less. When a composition does not fit, the
//     orchestrator asks (Source.Concede) and the agent offers its
//     usage-based minimum.
//   - Disk: the capture's total file bytes split evenly across the
//     services, and Minimum = Requested. A capture says which files lie
//     under the path, not which service needs them; the environment carries
//     all of them, so their total is demanded exactly once, cannot be
//     negotiated down, and no ownership is invented.
//   - Runtime digests what the service runs: each distinct process's
//     executable, command line and environment (secrets by digest). Digest
//     covers Runtime plus ports and resources, as for templates.
//   - Reads: "env:NAME" for every variable of the service's processes.
//   - Env: a live process's environment is environment-wide (DESIGN.md), so
//     each variable becomes one snapshot variable. Processes are taken in
//     (service, pid) order and the first to set a name wins when they
//     disagree. A secret-looking name carries only the digest of its value.
//     Variables that describe the session or init system that started the
//     process, not the application (see noiseEnv), are dropped.
//   - Files: every captured file, with its absolute path, digest, size and
//     mode. A file outside the captured path makes the capture unusable.

// noiseEnv lists variables that describe how a process was started — its
// login session, shell, terminal, locale or init system — rather than the
// application. The composed environment's own runtime sets these, so carrying
// them would only make every live source conflict with every other on them.
// LANG and LC_* are dropped too: locale is the host's choice, and an image
// that needs one sets it itself.
var noiseEnv = map[string]bool{
	"_": true, "PATH": true, "HOME": true, "PWD": true, "OLDPWD": true, "SHLVL": true,
	"SHELL": true, "USER": true, "LOGNAME": true, "MAIL": true, "HOSTNAME": true,
	"TERM": true, "COLORTERM": true, "TERM_PROGRAM": true, "TERM_PROGRAM_VERSION": true,
	"LS_COLORS": true, "DISPLAY": true, "LANG": true, "LANGUAGE": true,
	"INVOCATION_ID": true, "JOURNAL_STREAM": true, "NOTIFY_SOCKET": true, "MANAGERPID": true,
	"SYSTEMD_EXEC_PID": true, "LISTEN_PID": true, "LISTEN_FDS": true, "LISTEN_FDNAMES": true,
	"WATCHDOG_PID": true, "WATCHDOG_USEC": true, "RUNTIME_DIRECTORY": true,
	"STATE_DIRECTORY": true, "CACHE_DIRECTORY": true, "LOGS_DIRECTORY": true, "CONFIGURATION_DIRECTORY": true,
}

// noiseEnvPrefixes drops families of session variables.
var noiseEnvPrefixes = []string{"LC_", "XDG_", "SSH_", "DBUS_", "SUDO_"}

func isNoise(name string) bool {
	if noiseEnv[name] {
		return true
	}
	for _, p := range noiseEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

var (
	// serviceName is what Compose accepts as a service name.
	serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
)

const maxDigestLen = 200

// convert turns the capture the agent sent for src into src's snapshot. It
// returns an error naming the first field that makes the capture unusable.
func convert(src domain.Source, c *agentapi.Capture) (*domain.Snapshot, error) {
	files, totalBytes, err := convertFiles(src.Path, c.Files)
	if err != nil {
		return nil, err
	}
	procs, err := sortedProcesses(c.Processes)
	if err != nil {
		return nil, err
	}
	ports, err := portsByService(c.Ports)
	if err != nil {
		return nil, err
	}
	recs, err := recommendationsByService(c.Recommendations)
	if err != nil {
		return nil, err
	}

	var groups [][]agentapi.Process // one per service, in name order
	for i, p := range procs {
		if i == 0 || p.Service != procs[i-1].Service {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], p)
	}
	services := make([]domain.Service, 0, len(groups))
	for i, g := range groups {
		disk := diskShare(totalBytes, len(groups), i)
		svc, err := convertService(g, ports[g[0].Service], recs[g[0].Service], disk)
		if err != nil {
			return nil, err
		}
		services = append(services, svc)
	}

	at := c.CapturedAt
	if at.IsZero() {
		at = time.Now()
	}
	return &domain.Snapshot{
		Source:      src,
		Description: fmt.Sprintf("live capture of %s on %s at %s", src.Path, src.Host, at.UTC().Format(time.RFC3339)),
		Tags:        append([]string{}, src.Tags...),
		Services:    services,
		CapturedAt:  at.UTC(),
		Env:         environment(procs),
		Files:       files,
		Volumes:     []domain.Volume{},
	}, nil
}

// diskShare is service i's part of total split across n services; the
// first ones take the remainder, so the parts add up to total exactly.
func diskShare(total int64, n, i int) int64 {
	share := total / int64(n)
	if int64(i) < total%int64(n) {
		share++
	}
	return share
}

func convertFiles(root string, in []agentapi.File) ([]domain.File, int64, error) {
	files := make([]domain.File, 0, len(in))
	var total int64
	for i, f := range in {
		where := fmt.Sprintf("files[%d]", i)
		switch {
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path:
			return nil, 0, fmt.Errorf("%s.path %q is not an absolute, clean path", where, truncate(f.Path, 200))
		case !within(root, f.Path):
			return nil, 0, fmt.Errorf("%s.path %q is outside the captured path %s", where, truncate(f.Path, 200), root)
		case f.Digest == "" || len(f.Digest) > maxDigestLen:
			return nil, 0, fmt.Errorf("%s.digest of %s is missing or malformed", where, f.Path)
		case f.Size < 0:
			return nil, 0, fmt.Errorf("%s.size of %s is negative", where, f.Path)
		}
		total += f.Size
		if total < 0 {
			return nil, 0, fmt.Errorf("files: sizes add up past what can be counted")
		}
		files = append(files, domain.File{Path: f.Path, Digest: f.Digest, Size: f.Size, Mode: f.Mode})
	}
	slices.SortFunc(files, func(a, b domain.File) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(files); i++ {
		if files[i].Path == files[i-1].Path {
			return nil, 0, fmt.Errorf("files: %s is listed twice", files[i].Path)
		}
	}
	return files, total, nil
}

// within reports whether p is root or lies under it.
func within(root, p string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

func sortedProcesses(in []agentapi.Process) ([]agentapi.Process, error) {
	procs := slices.Clone(in)
	for i, p := range procs {
		if !serviceName.MatchString(p.Service) {
			return nil, fmt.Errorf("processes[%d].service %q is not a service name", i, truncate(p.Service, 200))
		}
		if p.CPUMillicores < 0 || p.MemoryBytes < 0 {
			return nil, fmt.Errorf("processes[%d] (pid %d) reports negative use", i, p.PID)
		}
	}
	slices.SortStableFunc(procs, func(a, b agentapi.Process) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), cmp.Compare(a.PID, b.PID))
	})
	return procs, nil
}

func portsByService(in []agentapi.Port) (map[string][]domain.Port, error) {
	out := map[string][]domain.Port{}
	seen := map[string]bool{}
	for i, p := range in {
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return nil, fmt.Errorf("ports[%d].protocol %q is not tcp or udp", i, truncate(p.Protocol, 40))
		}
		if p.Port < 1 || p.Port > 65535 {
			return nil, fmt.Errorf("ports[%d].port %d is not a port number", i, p.Port)
		}
		// One socket per address family (0.0.0.0 and ::) is still one port.
		key := fmt.Sprintf("%s|%s/%d", p.Service, p.Protocol, p.Port)
		if seen[key] {
			continue
		}
		seen[key] = true
		out[p.Service] = append(out[p.Service], domain.Port{Host: p.Port, Container: p.Port, Protocol: p.Protocol})
	}
	for _, ports := range out {
		slices.SortFunc(ports, func(a, b domain.Port) int {
			return cmp.Or(strings.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Host, b.Host))
		})
	}
	return out, nil
}

func recommendationsByService(in []agentapi.Recommendation) (map[string]*agentapi.Recommendation, error) {
	out := map[string]*agentapi.Recommendation{}
	for i := range in {
		r := &in[i]
		if r.MinCPUMillicores < 0 || r.DesiredCPUMillicores < 0 || r.MinMemoryBytes < 0 || r.DesiredMemoryBytes < 0 {
			return nil, fmt.Errorf("recommendations[%d] (%s) has a negative amount", i, truncate(r.Service, 100))
		}
		if _, dup := out[r.Service]; dup {
			return nil, fmt.Errorf("recommendations: service %s is recommended twice", truncate(r.Service, 100))
		}
		out[r.Service] = r
	}
	return out, nil
}

// convertService builds the service of one group of processes, sorted by pid.
func convertService(procs []agentapi.Process, ports []domain.Port, rec *agentapi.Recommendation, disk int64) (domain.Service, error) {
	svc := domain.Service{
		Name:      procs[0].Service,
		Image:     "exe:" + executable(procs[0]),
		Ports:     ports,
		DependsOn: []string{},
		Volumes:   []string{},
	}
	if svc.Ports == nil {
		svc.Ports = []domain.Port{}
	}
	if rec != nil {
		// A service never asks for less than it accepts.
		svc.Requested = domain.Resources{
			CPUMillicores: max(rec.DesiredCPUMillicores, rec.MinCPUMillicores),
			MemoryBytes:   max(rec.DesiredMemoryBytes, rec.MinMemoryBytes),
		}
	} else {
		for _, p := range procs {
			svc.Requested.CPUMillicores += p.CPUMillicores
			svc.Requested.MemoryBytes += p.MemoryBytes
		}
	}
	svc.Minimum = svc.Requested
	svc.Requested.DiskBytes, svc.Minimum.DiskBytes = disk, disk
	// What the service reads: the variables its processes run with (a live
	// process's environment is environment-wide, so each is a key of the
	// composed environment).
	for _, p := range procs {
		for _, e := range processEnv(p) {
			svc.Reads = append(svc.Reads, "env:"+e.Name)
		}
	}
	slices.Sort(svc.Reads)
	svc.Reads = slices.Compact(svc.Reads)

	runtime, err := json.Marshal(runtimeOf(procs))
	if err != nil {
		return svc, fmt.Errorf("service %s cannot be digested: %v", svc.Name, err)
	}
	svc.Runtime = domain.Digest(runtime)
	svc.Digest = svc.DefinitionDigest()
	if svc.Definition, err = definition(procs, svc.Reads); err != nil {
		return svc, fmt.Errorf("service %s cannot be written out: %v", svc.Name, err)
	}
	return svc, nil
}

// definition writes a live service as the Compose service that runs it
// again: its first process's command line in its working directory, the
// environment-wide variables its processes read (taken from the composed
// .env by name), and what it ran, as a label. A live process has no image:
// instantiation gives it one (see package instantiate).
func definition(procs []agentapi.Process, reads []string) ([]byte, error) {
	p := procs[0]
	s := types.ServiceConfig{Name: p.Service}
	s.Command = types.ShellCommand(p.Cmdline)
	s.WorkingDir = p.Cwd
	s.Labels = types.Labels{"dev.snapcompose.captured-exe": executable(p)}
	for _, r := range reads {
		if name, ok := strings.CutPrefix(r, "env:"); ok {
			if s.Environment == nil {
				s.Environment = types.MappingWithEquals{}
			}
			s.Environment[name] = nil
		}
	}
	return json.Marshal(s)
}

// executable names what a process runs: its executable, or when the agent
// could not read it (another user's process), its command or name.
func executable(p agentapi.Process) string {
	switch {
	case p.Exe != "":
		return p.Exe
	case len(p.Cmdline) > 0 && p.Cmdline[0] != "":
		return p.Cmdline[0]
	case p.Name != "":
		return p.Name
	}
	return "unknown"
}

// processSpec is what one process runs, as its service's Runtime covers it.
type processSpec struct {
	Exe     string       `json:"exe"`
	Cmdline []string     `json:"cmdline"`
	Env     []envSetting `json:"env"`
}

type envSetting struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// runtimeOf lists the distinct processes of a service in a canonical order.
// Pids and counts are left out: a service with four workers today and five
// tomorrow runs the same thing.
func runtimeOf(procs []agentapi.Process) []processSpec {
	var specs []processSpec
	seen := map[string]bool{}
	for _, p := range procs {
		spec := processSpec{Exe: executable(p), Cmdline: p.Cmdline, Env: []envSetting{}}
		if spec.Cmdline == nil {
			spec.Cmdline = []string{}
		}
		for _, e := range processEnv(p) {
			spec.Env = append(spec.Env, envSetting{Name: e.Name, Value: e.Value, Digest: e.Digest})
		}
		key, _ := json.Marshal(spec)
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		specs = append(specs, spec)
	}
	slices.SortFunc(specs, func(a, b processSpec) int {
		ka, _ := json.Marshal(a)
		kb, _ := json.Marshal(b)
		return strings.Compare(string(ka), string(kb))
	})
	return specs
}

// processEnv returns a process's variables that matter to an environment,
// sorted by name, secrets as digests. When a name repeats in one process's
// environment the first is the one getenv(3) sees, so it is kept.
func processEnv(p agentapi.Process) []domain.EnvVar {
	var out []domain.EnvVar
	seen := map[string]bool{}
	for _, e := range p.Env {
		if !envName.MatchString(e.Name) || isNoise(e.Name) || seen[e.Name] {
			continue
		}
		seen[e.Name] = true
		v := domain.EnvVar{Name: e.Name}
		switch {
		case e.Digest != "":
			v.Digest = truncate(e.Digest, maxDigestLen)
		case e.Value != nil && domain.IsSecretName(e.Name):
			// The agent's list of secret names may be shorter than ours;
			// a value ours calls secret is never kept.
			v.Digest = domain.Digest([]byte(*e.Value))
		case e.Value != nil:
			v.Value = *e.Value
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b domain.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// environment returns the environment-wide variables of a capture: every
// variable of every process, the first process in (service, pid) order
// winning a name, sorted by name.
func environment(procs []agentapi.Process) []domain.EnvVar {
	env := []domain.EnvVar{}
	seen := map[string]bool{}
	for _, p := range procs {
		for _, e := range processEnv(p) {
			if !seen[e.Name] {
				seen[e.Name] = true
				env = append(env, e)
			}
		}
	}
	slices.SortFunc(env, func(a, b domain.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return env
}
