package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// extensionKey is the Compose extension that carries snapcompose's part of a
// template, both at the top level and in each service.
const extensionKey = "x-snapcompose"

// Keys accepted inside the two x-snapcompose blocks.
var (
	templateKeys = []string{"description", "env", "id", "tags"}
	serviceKeys  = []string{"disk", "latency_sensitive", "min_disk", "optional"}
)

// Limits on what one template may declare, so that a hostile template cannot
// make every later stage (claims, conflicts, the LP) arbitrarily large.
const (
	maxPortsPerRange   = 1024
	maxPortsPerService = 1024
	maxProblems        = 20
	maxCores           = 1 << 20 // far above any machine; keeps millicores exact in int64
)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// converter maps a loaded Compose project to a snapshot, collecting every
// problem it finds so that a template's author can fix them all at once.
type converter struct {
	file     string
	project  *types.Project
	problems []domain.Problem
}

func (c *converter) problemf(where, format string, args ...any) {
	c.problems = append(c.problems, domain.Problem{Where: where, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems found as one EINVALID error whose message begins
// with the file: the problem itself when there is one, a count and the list
// otherwise.
func (c *converter) err() error {
	switch n := len(c.problems); {
	case n == 0:
		return nil
	case n == 1:
		return domain.Errorf(domain.EINVALID, "%s: %s", c.file, c.problems[0])
	default:
		problems := c.problems
		if n > maxProblems {
			problems = append(problems[:maxProblems:maxProblems], domain.Problem{Message: fmt.Sprintf("... and %d more", n-maxProblems)})
		}
		return domain.Invalid(fmt.Sprintf("%s: %d problems", c.file, n), problems)
	}
}

// convert maps a loaded project to the snapshot of template id.
func convert(file, id string, project *types.Project) (*domain.Snapshot, error) {
	c := &converter{file: file, project: project}
	snap := &domain.Snapshot{
		Source:   domain.Source{Type: domain.TemplateSource, ID: id},
		Tags:     []string{},
		Services: []domain.Service{},
		Env:      []domain.EnvVar{},
		Files:    []domain.File{},
		Volumes:  []domain.Volume{},
	}
	c.templateBlock(id, snap)
	if len(project.Jobs)+len(project.DisabledJobs) > 0 {
		c.problemf("jobs", "jobs are not supported in templates; declare the workload as a service")
	}

	// Profile-gated services are not part of the snapshot, as `docker
	// compose up` would not start them either.
	mounted := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		svc := c.service(project.Services[name])
		for _, v := range svc.Volumes {
			mounted[v] = true
		}
		snap.Services = append(snap.Services, svc)
	}
	if len(snap.Services) == 0 {
		c.problemf("services", "the template defines no service (one enabled without a profile, at least): it would contribute nothing")
	}
	c.checkPorts(snap.Services)
	c.checkCycles(snap.Services)
	snap.Volumes = c.volumes(mounted)

	if err := c.err(); err != nil {
		return nil, err
	}
	return snap, nil
}

// templateBlock reads the top-level x-snapcompose block into snap.
func (c *converter) templateBlock(id string, snap *domain.Snapshot) {
	raw, ok := c.project.Extensions[extensionKey]
	if !ok {
		c.problemf(extensionKey, "missing: a template declares `x-snapcompose: {id: %s, description: ..., tags: [...], env: {...}}`", id)
		return
	}
	block, ok := c.mapping(extensionKey, raw, templateKeys)
	if !ok {
		return
	}

	switch got, ok := block["id"]; {
	case !ok:
		c.problemf(extensionKey+".id", "missing: it must be the template's id %q", id)
	case !isString(got):
		c.problemf(extensionKey+".id", "must be a string, not %s", describe(got))
	case got != id:
		c.problemf(extensionKey+".id", "%q does not match the template's id %q (from its file name)", truncate(got.(string), 200), id)
	}

	if d, ok := block["description"]; ok {
		if s, ok := d.(string); ok {
			snap.Description = s
		} else {
			c.problemf(extensionKey+".description", "must be a string, not %s", describe(d))
		}
	}

	if t, ok := block["tags"]; ok {
		list, ok := t.([]any)
		if !ok {
			c.problemf(extensionKey+".tags", "must be a list of strings, not %s", describe(t))
		}
		for i, tag := range list {
			if s, ok := tag.(string); ok && s != "" {
				snap.Tags = append(snap.Tags, s)
			} else {
				c.problemf(fmt.Sprintf("%s.tags[%d]", extensionKey, i), "must be a non-empty string, not %s", describe(tag))
			}
		}
	}

	if e, ok := block["env"]; ok {
		snap.Env = c.env(e)
	}
}

// env reads the environment-wide variables. Values are never quoted back in
// messages: they may be secrets.
func (c *converter) env(raw any) []domain.EnvVar {
	where := extensionKey + ".env"
	vars, ok := raw.(map[string]any)
	if !ok {
		c.problemf(where, "must be a mapping of variable names to string values, not %s", describe(raw))
		return []domain.EnvVar{}
	}
	env := make([]domain.EnvVar, 0, len(vars))
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		if !envNamePattern.MatchString(name) {
			c.problemf(where, "%q is not a valid variable name: names start with a letter or '_' and contain only letters, digits and '_'", truncate(name, 100))
			continue
		}
		value, ok := vars[name].(string)
		if !ok {
			hint := ""
			switch vars[name].(type) {
			case bool, int, int64, uint64, float64, time.Time:
				hint = `; quote it ("...") so it is read as text`
			}
			c.problemf(where+"."+name, "must be a string, not %s%s", describe(vars[name]), hint)
			continue
		}
		env = append(env, domain.EnvVar{Name: name, Value: value})
	}
	return env
}

// service maps one Compose service.
func (c *converter) service(s types.ServiceConfig) domain.Service {
	svc := domain.Service{
		Name:      s.Name,
		Image:     s.Image,
		Ports:     c.ports(s),
		DependsOn: c.dependencies(s),
		Volumes:   c.namedVolumes(s),
	}
	svc.Requested, svc.Minimum = c.compute(s)

	disk, minDisk, optional, latency := c.serviceBlock(s)
	svc.Requested.DiskBytes, svc.Minimum.DiskBytes = disk, minDisk
	svc.Optional, svc.LatencySensitive = optional, latency
	// What the service reads: the environment-wide variables it takes by
	// name (`environment: [NAME]`, a name without a value).
	for name, v := range s.Environment {
		if v == nil {
			svc.Reads = append(svc.Reads, "env:"+name)
		}
	}
	slices.Sort(svc.Reads)

	runtime, err := canonicalJSON(runtimeSpec(s))
	if err != nil {
		c.problemf("services."+s.Name, "cannot be digested: %v", err)
		return svc
	}
	svc.Runtime = domain.Digest(runtime)
	svc.Digest = svc.DefinitionDigest()
	if svc.Definition, err = json.Marshal(s); err != nil {
		c.problemf("services."+s.Name, "cannot be written out: %v", err)
	}
	return svc
}

// runtimeSpec returns the part of a service that says what it runs: all of
// it except its name, where it is reachable (ports), what it waits for
// (depends_on), how much it gets (resources, replicas) and snapcompose's
// extension. Taking everything but a known few, rather than a chosen few,
// means two services are never taken for interchangeable ("share") because
// of a field nobody thought of.
func runtimeSpec(s types.ServiceConfig) types.ServiceConfig {
	s.Name = ""
	s.Profiles = nil // the service is enabled; which profile enabled it does not matter
	s.Ports = nil
	s.DependsOn = nil
	s.Extensions = nil
	s.Develop = nil // `compose watch` settings, not what runs
	s.Attach = nil  // whether the CLI attaches to its logs
	s.Scale = nil
	s.CPUS = 0
	s.MemLimit = 0
	s.MemReservation = 0
	if s.Deploy != nil {
		d := *s.Deploy
		d.Replicas = nil
		d.Resources.Limits = withoutCompute(d.Resources.Limits)
		d.Resources.Reservations = withoutCompute(d.Resources.Reservations)
		s.Deploy = &d
		// A deploy block that only sized the service says nothing about
		// what it runs: it must digest like no deploy block at all.
		if reflect.ValueOf(d).IsZero() {
			s.Deploy = nil
		}
	}
	return s
}

// withoutCompute returns r without cpus and memory, or nil if nothing else
// is left.
func withoutCompute(r *types.Resource) *types.Resource {
	if r == nil {
		return nil
	}
	out := *r
	out.NanoCPUs = 0
	out.MemoryBytes = 0
	if reflect.ValueOf(out).IsZero() {
		return nil
	}
	return &out
}

// ports lists the host ports a service publishes, one per host port.
func (c *converter) ports(s types.ServiceConfig) []domain.Port {
	where := "services." + s.Name + ".ports"
	seen := map[string]int{} // "tcp/8080" -> container port
	ports := []domain.Port{}
	for _, p := range s.Ports {
		if p.Published == "" {
			continue // not published on the host
		}
		protocol := strings.ToLower(p.Protocol)
		if protocol == "" {
			protocol = "tcp"
		}
		if protocol != "tcp" && protocol != "udp" {
			c.problemf(where, "protocol %q of published port %q is not supported: use tcp or udp", truncate(p.Protocol, 40), truncate(p.Published, 40))
			continue
		}
		if p.Target < 1 || p.Target > 65535 {
			c.problemf(where, "container port %d of published port %q is not a port number (1-65535)", p.Target, truncate(p.Published, 40))
			continue
		}
		first, last, err := parsePortRange(p.Published)
		if err != nil {
			c.problemf(where, "published port %q: %v", truncate(p.Published, 40), err)
			continue
		}
		if first == 0 {
			continue // "0": the engine picks a free port, so none is claimed
		}
		for host := first; host <= last; host++ {
			key := fmt.Sprintf("%s/%d", protocol, host)
			if container, ok := seen[key]; ok {
				if container != int(p.Target) {
					c.problemf(where, "host port %s is published twice, to container ports %d and %d", key, container, p.Target)
				}
				continue // the same mapping on another host address
			}
			if len(ports) == maxPortsPerService {
				c.problemf(where, "publishes more than %d host ports", maxPortsPerService)
				return ports
			}
			seen[key] = int(p.Target)
			ports = append(ports, domain.Port{Host: host, Container: int(p.Target), Protocol: protocol})
		}
	}
	slices.SortFunc(ports, func(a, b domain.Port) int {
		if n := strings.Compare(a.Protocol, b.Protocol); n != 0 {
			return n
		}
		return a.Host - b.Host
	})
	return ports
}

// parsePortRange reads "8080" or "8000-8002".
func parsePortRange(s string) (first, last int, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if first, err = parsePort(lo); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, first, nil
	}
	if last, err = parsePort(hi); err != nil {
		return 0, 0, err
	}
	switch {
	case first == 0 || last < first:
		return 0, 0, fmt.Errorf("not a range of port numbers (like 8000-8002)")
	case last-first+1 > maxPortsPerRange:
		return 0, 0, fmt.Errorf("a range may hold at most %d ports", maxPortsPerRange)
	}
	return first, last, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("not a port number (1-65535)")
	}
	return n, nil
}

// dependencies lists the services s needs: depends_on, links, volumes_from
// and network_mode (and the other "service:x" namespaces), sorted. compose-go
// already folds them all into depends_on; taking the union again keeps this
// true whatever it does. Services left out by profiles are left out here too,
// so no dependency dangles.
func (c *converter) dependencies(s types.ServiceConfig) []string {
	set := map[string]bool{}
	for name := range s.DependsOn {
		set[name] = true
	}
	for _, link := range s.Links {
		name, _, _ := strings.Cut(link, ":")
		set[name] = true
	}
	for _, from := range s.VolumesFrom {
		if !strings.HasPrefix(from, types.ContainerPrefix) {
			name, _, _ := strings.Cut(from, ":")
			set[name] = true
		}
	}
	for _, ns := range []string{s.NetworkMode, s.Ipc, s.Pid, s.Uts, s.Cgroup} {
		if name, ok := strings.CutPrefix(ns, types.ServicePrefix); ok {
			set[name] = true
		}
	}
	deps := []string{}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if _, enabled := c.project.Services[name]; enabled {
			deps = append(deps, name)
		}
	}
	return deps
}

// namedVolumes lists the top-level named volumes s mounts, sorted.
func (c *converter) namedVolumes(s types.ServiceConfig) []string {
	set := map[string]bool{}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue // a bind mount, tmpfs, or anonymous volume
		}
		if _, declared := c.project.Volumes[v.Source]; declared {
			set[v.Source] = true
		}
	}
	return append([]string{}, slices.Sorted(maps.Keys(set))...)
}

// volumes lists the top-level volumes some service mounts, each with a digest
// of its declaration. The name counts only when the template sets it (or the
// volume is external): the default "<project>_<key>" names the template's
// project, and in a composed environment every volume lives in one project.
func (c *converter) volumes(mounted map[string]bool) []domain.Volume {
	volumes := []domain.Volume{}
	for _, name := range slices.Sorted(maps.Keys(mounted)) {
		v := c.project.Volumes[name]
		explicitName := v.Name
		if explicitName == c.project.Name+"_"+name && !bool(v.External) {
			explicitName = ""
		}
		decl, err := canonicalJSON(volumeDeclaration{
			Driver:     v.Driver,
			DriverOpts: v.DriverOpts,
			External:   bool(v.External),
			Name:       explicitName,
			Labels:     v.Labels,
		})
		if err != nil {
			c.problemf("volumes."+name, "cannot be digested: %v", err)
			continue
		}
		def, err := json.Marshal(v)
		if err != nil {
			c.problemf("volumes."+name, "cannot be written out: %v", err)
			continue
		}
		volumes = append(volumes, domain.Volume{Name: name, Digest: domain.Digest(decl), Definition: def})
	}
	return volumes
}

// volumeDeclaration is what a volume's Digest covers.
type volumeDeclaration struct {
	Driver     string            `json:"driver"`
	DriverOpts map[string]string `json:"driver_opts"`
	External   bool              `json:"external"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels"`
}

// amount is one declared cpu or memory amount, with where it was declared.
type amount struct {
	set   bool
	value int64
	where string // full field path, for messages
	name  string // short field name, for "is above limits.cpus 1 core"
}

// compute reads what a service asks for (limits) and the least it accepts
// (reservations). When only one of the two is declared for a resource, it is
// both. Amounts are per container; the service's demand is that times its
// replicas.
func (c *converter) compute(s types.ServiceConfig) (requested, minimum domain.Resources) {
	prefix := "services." + s.Name + "."
	var limits, reservations *types.Resource
	if s.Deploy != nil {
		limits, reservations = s.Deploy.Resources.Limits, s.Deploy.Resources.Reservations
	}

	var limCPU, resCPU, limMem, resMem amount
	if limits != nil && limits.NanoCPUs != 0 {
		limCPU = c.cores(float64(limits.NanoCPUs), prefix+"deploy.resources.limits.cpus", "limits.cpus")
	} else if s.CPUS != 0 {
		limCPU = c.cores(float64(s.CPUS), prefix+"cpus", "cpus")
	}
	if reservations != nil && reservations.NanoCPUs != 0 {
		resCPU = c.cores(float64(reservations.NanoCPUs), prefix+"deploy.resources.reservations.cpus", "reservations.cpus")
	}
	if limits != nil && limits.MemoryBytes != 0 {
		limMem = c.bytes(int64(limits.MemoryBytes), prefix+"deploy.resources.limits.memory", "limits.memory")
	} else if s.MemLimit != 0 {
		limMem = c.bytes(int64(s.MemLimit), prefix+"mem_limit", "mem_limit")
	}
	if reservations != nil && reservations.MemoryBytes != 0 {
		resMem = c.bytes(int64(reservations.MemoryBytes), prefix+"deploy.resources.reservations.memory", "reservations.memory")
	} else if s.MemReservation != 0 {
		resMem = c.bytes(int64(s.MemReservation), prefix+"mem_reservation", "mem_reservation")
	}

	if limCPU.set && resCPU.set && resCPU.value > limCPU.value {
		c.problemf(resCPU.where, "%s is above %s %s", quantity.FormatCPU(resCPU.value), limCPU.name, quantity.FormatCPU(limCPU.value))
	}
	if limMem.set && resMem.set && resMem.value > limMem.value {
		c.problemf(resMem.where, "%s is above %s %s", quantity.FormatBytes(resMem.value), limMem.name, quantity.FormatBytes(limMem.value))
	}

	scale := int64(s.GetScale())
	requested.CPUMillicores = c.times(either(limCPU, resCPU), scale, prefix+"deploy.replicas")
	minimum.CPUMillicores = c.times(either(resCPU, limCPU), scale, prefix+"deploy.replicas")
	requested.MemoryBytes = c.times(either(limMem, resMem), scale, prefix+"deploy.replicas")
	minimum.MemoryBytes = c.times(either(resMem, limMem), scale, prefix+"deploy.replicas")
	return requested, minimum
}

// either returns a's value if it is declared, else b's.
func either(a, b amount) int64 {
	if a.set {
		return a.value
	}
	return b.value
}

func (c *converter) times(v, scale int64, where string) int64 {
	if scale <= 1 || v == 0 {
		return v * max(scale, 0)
	}
	if v > math.MaxInt64/4/scale {
		c.problemf(where, "%d replicas of this service need more than can be counted", scale)
		return 0
	}
	return v * scale
}

// cores converts Compose's float cores to millicores, rounded to nearest.
func (c *converter) cores(v float64, where, name string) amount {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxCores {
		c.problemf(where, "must be a number of cores between 0 and %d", maxCores)
		return amount{}
	}
	return amount{set: true, value: int64(math.Round(v * 1000)), where: where, name: name}
}

func (c *converter) bytes(v int64, where, name string) amount {
	if v < 0 {
		c.problemf(where, "must be a positive size such as 512MiB (unlimited, -1, is not accepted)")
		return amount{}
	}
	return amount{set: true, value: v, where: where, name: name}
}

// serviceBlock reads a service's x-snapcompose block: its disk, the least
// disk it accepts, whether the composition may drop it, and whether others
// wait on it in their request path.
func (c *converter) serviceBlock(s types.ServiceConfig) (disk, minDisk int64, optional, latency bool) {
	where := "services." + s.Name + "." + extensionKey
	raw, ok := s.Extensions[extensionKey]
	if !ok {
		return 0, 0, false, false
	}
	block, ok := c.mapping(where, raw, serviceKeys)
	if !ok {
		return 0, 0, false, false
	}
	d := c.size(block, "disk", where)
	m := c.size(block, "min_disk", where)
	optional = c.flag(block, "optional", where)
	latency = c.flag(block, "latency_sensitive", where)
	if optional && latency {
		c.problemf(where, "optional and latency_sensitive: a service others wait on cannot be left out")
	}
	if d.set && m.set && m.value > d.value {
		c.problemf(m.where, "%s is above disk %s", quantity.FormatBytes(m.value), quantity.FormatBytes(d.value))
	}
	return either(d, m), either(m, d), optional, latency
}

// flag reads a true/false key of block.
func (c *converter) flag(block map[string]any, key, where string) bool {
	v, ok := block[key]
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		c.problemf(where+"."+key, "must be true or false, not %s", describe(v))
	}
	return b
}

func (c *converter) size(block map[string]any, key, where string) amount {
	where += "." + key
	v, ok := block[key]
	if !ok {
		return amount{}
	}
	s, ok := v.(string)
	if !ok {
		c.problemf(where, "must be a size with a unit such as \"10GB\", not %s", describe(v))
		return amount{}
	}
	n, err := quantity.ParseBytes(s)
	if err != nil {
		c.problemf(where, "%v", err)
		return amount{}
	}
	return amount{set: true, value: n, where: where, name: key}
}

// mapping checks that raw is a mapping holding only accepted keys.
func (c *converter) mapping(where string, raw any, accepted []string) (map[string]any, bool) {
	block, ok := raw.(map[string]any)
	if !ok {
		c.problemf(where, "must be a mapping with keys %s, not %s", strings.Join(accepted, ", "), describe(raw))
		return nil, false
	}
	for _, key := range slices.Sorted(maps.Keys(block)) {
		if !slices.Contains(accepted, key) {
			c.problemf(where+"."+truncate(key, 100), "unknown key; the accepted keys are %s", strings.Join(accepted, ", "))
		}
	}
	return block, true
}

// checkPorts finds host ports that two services of the template publish.
func (c *converter) checkPorts(services []domain.Service) {
	owner := map[string]string{}
	for _, s := range services {
		for _, p := range s.Ports {
			key := fmt.Sprintf("%s/%d", p.Protocol, p.Host)
			if other, ok := owner[key]; ok {
				c.problemf("services."+s.Name+".ports", "host port %s is also published by service %s", key, other)
				continue
			}
			owner[key] = s.Name
		}
	}
}

// checkCycles reports a dependency cycle among the services.
func (c *converter) checkCycles(services []domain.Service) {
	names := make([]string, len(services))
	deps := make(map[string][]string, len(services))
	for i, s := range services {
		names[i] = s.Name
		deps[s.Name] = s.DependsOn
	}
	if cycle := cycleIn(names, deps); cycle != nil {
		c.problemf("services."+cycle[0]+".depends_on", "dependency cycle: %s", strings.Join(cycle, " -> "))
	}
}

// findCycle returns a dependency cycle among a project's services, or nil.
func findCycle(project *types.Project) []string {
	c := &converter{project: project}
	names := slices.Sorted(maps.Keys(project.Services))
	deps := make(map[string][]string, len(names))
	for _, name := range names {
		deps[name] = c.dependencies(project.Services[name])
	}
	return cycleIn(names, deps)
}

// cycleIn finds a cycle in a dependency graph, naming it the same way every
// time: services are visited in the order of names (sorted) and their
// dependencies in the order given (sorted), so the cycle starts at the first
// service, by name, from which it is reached. It returns the cycle with its
// first service repeated at the end, or nil.
func cycleIn(names []string, deps map[string][]string) []string {
	const (
		unvisited = iota
		onPath
		done
	)
	state := make(map[string]int, len(names))
	var path []string
	var visit func(name string) []string
	visit = func(name string) []string {
		state[name] = onPath
		path = append(path, name)
		for _, d := range deps[name] {
			switch state[d] {
			case onPath:
				i := slices.Index(path, d)
				return append(slices.Clone(path[i:]), d)
			case unvisited:
				if cycle := visit(d); cycle != nil {
					return cycle
				}
			}
		}
		path = path[:len(path)-1]
		state[name] = done
		return nil
	}
	for _, name := range names {
		if state[name] == unvisited {
			if cycle := visit(name); cycle != nil {
				return cycle
			}
		}
	}
	return nil
}

// canonicalJSON encodes v as JSON with every object's keys sorted, so equal
// values always give equal bytes.
func canonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic)
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// describe names the YAML type of v, for messages.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case time.Time:
		return "a date"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
