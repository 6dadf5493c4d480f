// Package instantiate materialises a composed environment (DESIGN.md step
// 7): its file tree, a compose.yaml that compose-go loads back, a .env and
// plan.json, written into a directory all at once or not at all.
//
// The directory it writes:
//
//	compose.yaml  the resolved services: renamed, ports remapped, depends_on
//	              rewritten, deploy.resources set from the allocation
//	.env          the environment-wide variables (mode 0600)
//	plan.json     the plan, as the API serves it
//	rootfs/       the files, at their paths in the environment
//
// A template's bind mount of an absolute path (or of ./files/...) mounts
// that path from rootfs/; a live service mounts its captured path from
// rootfs/ and runs its captured command line in a base image (a live
// process has none: Options.LiveImage).
package instantiate

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// DefaultLiveImage is the image a live service runs in unless
// Options.LiveImage names another: its captured files are mounted in it.
const DefaultLiveImage = "debian:bookworm-slim"

// Blobs opens the content of the files a plan places.
type Blobs interface {
	// Open returns file f of source src; the content must match f.Digest.
	Open(ctx context.Context, src domain.Source, f domain.PlanFile) (io.ReadCloser, error)
}

// Options configure Write.
type Options struct {
	Blobs Blobs
	// LiveImage is the image live services run in; "" means DefaultLiveImage.
	LiveImage string
	// PlanJSON is written as plan.json; nil means the plan indented.
	PlanJSON []byte
}

// Result says what Write wrote.
type Result struct {
	Dir      string
	Services int
	Files    int
	Bytes    int64 // of the files under rootfs/
}

// Write materialises rec into dir. Everything is written into a sibling
// directory first and renamed into place at the end, so dir holds either
// the previous content (if any) or the whole new environment, never part
// of one. The compose.yaml is loaded back with compose-go before the
// rename; a file whose content does not match its digest fails it.
func Write(ctx context.Context, rec *domain.PlanRecord, dir string, opt Options) (Result, error) {
	if rec == nil || rec.Plan == nil {
		return Result{}, errors.New("instantiating: there is no plan")
	}
	if opt.LiveImage == "" {
		opt.LiveImage = DefaultLiveImage
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Result{}, fmt.Errorf("instantiating into %s: %w", dir, err)
	}
	tmp := dir + ".partial-" + randomSuffix()
	if err := os.Mkdir(tmp, 0o750); err != nil {
		return Result{}, fmt.Errorf("instantiating into %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	res, err := write(ctx, rec, tmp, opt)
	if err != nil {
		return Result{}, err
	}
	if err := replaceDir(tmp, dir); err != nil {
		return Result{}, fmt.Errorf("instantiating into %s: %w", dir, err)
	}
	ok = true
	res.Dir = dir
	return res, nil
}

// replaceDir moves tmp to dir, replacing what dir held.
func replaceDir(tmp, dir string) error {
	// Renaming onto a directory that is not empty fails with ENOTEMPTY
	// or EEXIST, both os.ErrExist.
	if err := os.Rename(tmp, dir); !errors.Is(err, os.ErrExist) {
		return err
	}
	old := dir + ".old-" + randomSuffix()
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir) // put the previous one back
		return err
	}
	return os.RemoveAll(old)
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// write fills dir.
func write(ctx context.Context, rec *domain.PlanRecord, dir string, opt Options) (Result, error) {
	plan := rec.Plan
	snaps := map[domain.SourceRef]*domain.Snapshot{}
	for _, s := range rec.Snapshots {
		snaps[s.Source.Ref()] = s
	}
	res := Result{Services: len(plan.Services), Files: len(plan.Files)}
	n, err := writeFiles(ctx, plan, snaps, filepath.Join(dir, "rootfs"), opt.Blobs)
	if err != nil {
		return Result{}, err
	}
	res.Bytes = n

	env, err := envFile(plan, snaps)
	if err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), env, 0o600); err != nil {
		return Result{}, err
	}
	project, err := Project(plan, snaps, opt.LiveImage)
	if err != nil {
		return Result{}, err
	}
	body, err := project.MarshalYAML()
	if err != nil {
		return Result{}, fmt.Errorf("writing compose.yaml: %w", err)
	}
	// The definitions were interpolated when their sources were loaded:
	// every "$" left is literal, and must be written "$$" so that loading
	// compose.yaml does not interpolate it again.
	body = bytes.ReplaceAll(body, []byte("$"), []byte("$$"))
	header := fmt.Sprintf("# %s, composed by snapcompose with %s. Run it with: docker compose up\n", strings.ReplaceAll(plan.Name, "\n", " "), plan.Strategy)
	body = append([]byte(header), body...)
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), body, 0o644); err != nil {
		return Result{}, err
	}
	if _, err := Load(ctx, dir); err != nil {
		return Result{}, fmt.Errorf("the compose.yaml written does not load back: %w", err)
	}
	planJSON := opt.PlanJSON
	if planJSON == nil {
		if planJSON, err = json.MarshalIndent(plan, "", "  "); err != nil {
			return Result{}, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), planJSON, 0o644); err != nil {
		return Result{}, err
	}
	return res, nil
}

// Load loads the compose.yaml of an instantiated directory with compose-go,
// its .env as the interpolation environment, as docker compose would.
func Load(ctx context.Context, dir string) (*types.Project, error) {
	env, err := dotenv.Read(filepath.Join(dir, ".env"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ".env"), err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(abs, "compose.yaml")
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: body}},
		Environment: env,
	})
}

// writeFiles places every file of the plan under root and returns the
// bytes written.
func writeFiles(ctx context.Context, plan *domain.Plan, snaps map[domain.SourceRef]*domain.Snapshot, root string, blobs Blobs) (int64, error) {
	if len(plan.Files) > 0 && blobs == nil {
		return 0, errors.New("instantiating: the plan places files but nothing can fetch them")
	}
	var total int64
	for _, f := range plan.Files {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return total, fmt.Errorf("file %q of %s: not an absolute, clean path", f.Path, f.Source)
		}
		snap := snaps[f.Source]
		if snap == nil {
			return total, fmt.Errorf("file %s: its source %s was not retrieved", f.Path, f.Source)
		}
		mode := os.FileMode(0o644)
		for _, sf := range snap.Files {
			if sf.Path == f.Path && sf.Mode&0o777 != 0 {
				mode = os.FileMode(sf.Mode & 0o777)
			}
		}
		dst := filepath.Join(root, filepath.FromSlash(f.Path))
		n, err := copyBlob(ctx, blobs, snap.Source, f, dst, mode)
		total += n
		if err != nil {
			return total, fmt.Errorf("file %s from %s: %w", f.Path, f.Source, err)
		}
	}
	return total, nil
}

func copyBlob(ctx context.Context, blobs Blobs, src domain.Source, f domain.PlanFile, dst string, mode os.FileMode) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	r, err := blobs.Open(ctx, src, f)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o200)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if n != f.Size && f.Size > 0 {
		return n, fmt.Errorf("got %d bytes, the plan says %d", n, f.Size)
	}
	return n, os.Chmod(dst, mode)
}

// envFile writes the plan's environment-wide variables. A secret's value
// is written when its source declared it (a template's); a live secret
// arrives as a digest only, so its line is left empty with a comment
// saying which value to set.
func envFile(plan *domain.Plan, snaps map[domain.SourceRef]*domain.Snapshot) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The environment-wide variables of %s (snapcompose).\n", plan.Name)
	want := map[string]string{}
	for _, e := range plan.Env {
		var value string
		switch {
		case e.Value != nil:
			value = *e.Value
		default:
			v, ok := secretValue(snaps[e.Source], e.Name, e.Digest)
			if !ok {
				fmt.Fprintf(&b, "# %s: a secret captured from %s as %s only; set its value before running.\n%s=\n", e.Name, e.Source, e.Digest, e.Name)
				want[e.Name] = ""
				continue
			}
			value = v
		}
		line, err := envLine(e.Name, value)
		if err != nil {
			return nil, err
		}
		b.WriteString(line)
		want[e.Name] = value
	}
	// What docker compose will read must be what the plan says.
	got, err := dotenv.UnmarshalBytesWithLookup(b.Bytes(), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("writing .env: %w", err)
	}
	for name, v := range want {
		if got[name] != v {
			return nil, fmt.Errorf("writing .env: variable %s cannot be written so that it reads back the same", name)
		}
	}
	return b.Bytes(), nil
}

// secretValue returns the value of the secret name that snap declared with
// digest, when snap knows it.
func secretValue(snap *domain.Snapshot, name, digest string) (string, bool) {
	if snap == nil {
		return "", false
	}
	for _, e := range snap.Env {
		if e.Name == name && e.Digest == "" && domain.Digest([]byte(e.Value)) == digest {
			return e.Value, true
		}
	}
	return "", false
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// envLine writes NAME=value so that dotenv reads value back: single-quoted
// (nothing is expanded) unless the value holds a single quote or a newline,
// then double-quoted with escapes.
func envLine(name, value string) (string, error) {
	if !envName.MatchString(name) {
		return "", fmt.Errorf("writing .env: %q is not a variable name", name)
	}
	if !strings.ContainsAny(value, "'\n\r") {
		return name + "='" + value + "'\n", nil
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "$", `\$`)
	return name + `="` + r.Replace(value) + "\"\n", nil
}

// projectName makes a Compose project name of a composition's name.
func projectName(name string) string {
	n := loader.NormalizeProjectName(strings.ReplaceAll(strings.ToLower(name), " ", "-"))
	n = strings.TrimLeft(n, "-_")
	if n == "" {
		return "snapcompose"
	}
	return n
}

// Project builds the Compose project of a plan from the services' and
// volumes' definitions in their snapshots.
func Project(plan *domain.Plan, snaps map[domain.SourceRef]*domain.Snapshot, liveImage string) (*types.Project, error) {
	p := &types.Project{Name: projectName(plan.Name), Services: types.Services{}, Volumes: types.Volumes{}}
	// What each source's names became.
	names := map[domain.SourceRef]map[string]string{}
	rename := func(src domain.SourceRef, from, to string) {
		if names[src] == nil {
			names[src] = map[string]string{}
		}
		names[src][from] = to
	}
	inPlan := map[string]bool{}
	for _, s := range plan.Services {
		rename(s.Source, cmp.Or(s.RenamedFrom, s.Name), s.Name)
		for _, o := range s.SharedWith {
			rename(o, s.Name, s.Name)
		}
		inPlan[s.Name] = true
	}
	volumes := map[domain.SourceRef]map[string]string{}
	for _, v := range plan.Volumes {
		if volumes[v.Source] == nil {
			volumes[v.Source] = map[string]string{}
		}
		volumes[v.Source][cmp.Or(v.RenamedFrom, v.Name)] = v.Name
		vc, err := volumeConfig(snaps[v.Source], cmp.Or(v.RenamedFrom, v.Name))
		if err != nil {
			return nil, err
		}
		vc.Name = ""
		if vc.External {
			vc.Name = cmp.Or(v.RenamedFrom, v.Name)
		}
		p.Volumes[v.Name] = vc
	}
	for _, ps := range plan.Services {
		sc, err := service(ps, snaps[ps.Source], names[ps.Source], volumes[ps.Source], inPlan, liveImage)
		if err != nil {
			return nil, err
		}
		for _, m := range sc.Volumes {
			if m.Type == types.VolumeTypeVolume && m.Source != "" {
				if _, ok := p.Volumes[m.Source]; !ok {
					p.Volumes[m.Source] = types.VolumeConfig{}
				}
			}
		}
		p.Services[ps.Name] = sc
	}
	return p, nil
}

func volumeConfig(snap *domain.Snapshot, name string) (types.VolumeConfig, error) {
	var vc types.VolumeConfig
	if snap == nil {
		return vc, nil
	}
	for _, v := range snap.Volumes {
		if v.Name == name && v.Definition != nil {
			if err := json.Unmarshal(v.Definition, &vc); err != nil {
				return vc, fmt.Errorf("volume %s of %s: %w", name, snap.Source.Ref(), err)
			}
		}
	}
	return vc, nil
}

// service builds one service of the project.
func service(ps domain.PlanService, snap *domain.Snapshot, names, volumes map[string]string, inPlan map[string]bool, liveImage string) (types.ServiceConfig, error) {
	var sc types.ServiceConfig
	if snap == nil {
		return sc, fmt.Errorf("service %s: its source %s was not retrieved", ps.Name, ps.Source)
	}
	orig := cmp.Or(ps.RenamedFrom, ps.Name)
	found := false
	for _, s := range snap.Services {
		if s.Name != orig {
			continue
		}
		found = true
		if s.Definition != nil {
			if err := json.Unmarshal(s.Definition, &sc); err != nil {
				return sc, fmt.Errorf("service %s of %s: %w", orig, ps.Source, err)
			}
		}
	}
	if !found {
		return sc, fmt.Errorf("service %s: %s has no service %s", ps.Name, ps.Source, orig)
	}
	newName := func(n string) string {
		if to, ok := names[n]; ok {
			return to
		}
		return n
	}
	sc.Name = ps.Name
	sc.Image = ps.Image
	live := snap.Source.Type == domain.LiveSource
	if live {
		sc.Image = liveImage
	}
	sc.Ports = nil
	for _, port := range ps.Ports {
		sc.Ports = append(sc.Ports, types.ServicePortConfig{
			Mode: "ingress", Target: uint32(port.Container), Published: strconv.Itoa(port.Host), Protocol: port.Protocol,
		})
	}
	// depends_on: the plan's, keeping each dependency's conditions.
	deps := types.DependsOnConfig{}
	byNew := map[string]types.ServiceDependency{}
	for name, d := range sc.DependsOn {
		byNew[newName(name)] = d
	}
	for _, name := range ps.DependsOn {
		d, ok := byNew[name]
		if !ok {
			d = types.ServiceDependency{Condition: types.ServiceConditionStarted, Required: true}
		}
		deps[name] = d
	}
	sc.DependsOn = nil
	if len(deps) > 0 {
		sc.DependsOn = deps
	}
	var links []string
	for _, l := range sc.Links {
		target, alias, hasAlias := strings.Cut(l, ":")
		target = newName(target)
		if !inPlan[target] {
			continue
		}
		if hasAlias {
			links = append(links, target+":"+alias)
		} else {
			links = append(links, target+":"+cmp.Or(newNameInverse(names, target), target))
		}
	}
	sc.Links = links
	if s, ok := strings.CutPrefix(sc.NetworkMode, "service:"); ok {
		sc.NetworkMode = "service:" + newName(s)
	}
	for i, m := range sc.Volumes {
		switch {
		case m.Type == types.VolumeTypeVolume && m.Source != "":
			if to, ok := volumes[m.Source]; ok {
				sc.Volumes[i].Source = to
			}
		case m.Type == types.VolumeTypeBind && path.IsAbs(m.Source):
			sc.Volumes[i].Source = "./rootfs" + path.Clean(m.Source)
		case m.Type == types.VolumeTypeBind && strings.HasPrefix(path.Clean(m.Source), "files/"):
			sc.Volumes[i].Source = "./rootfs/" + strings.TrimPrefix(path.Clean(m.Source), "files/")
		}
	}
	if root := path.Clean(snap.Source.Path); live && path.IsAbs(root) {
		// The captured tree, where the captured command line finds it.
		sc.Volumes = append(sc.Volumes, types.ServiceVolumeConfig{Type: types.VolumeTypeBind, Source: "./rootfs" + root, Target: root})
	}
	// What it gets: the allocation; what it accepts at least: its minimum.
	sc.CPUS, sc.MemLimit, sc.MemReservation = 0, 0, 0
	if sc.Deploy == nil {
		sc.Deploy = &types.DeployConfig{}
	}
	a, m := ps.Allocation, ps.Minimum
	if sc.Deploy.Resources.Limits == nil {
		sc.Deploy.Resources.Limits = &types.Resource{}
	}
	sc.Deploy.Resources.Limits.NanoCPUs = types.NanoCPUs(float64(a.CPUMillicores) / 1000)
	sc.Deploy.Resources.Limits.MemoryBytes = types.UnitBytes(a.MemoryBytes)
	if m.CPUMillicores > 0 || m.MemoryBytes > 0 {
		if sc.Deploy.Resources.Reservations == nil {
			sc.Deploy.Resources.Reservations = &types.Resource{}
		}
		sc.Deploy.Resources.Reservations.NanoCPUs = types.NanoCPUs(float64(min(m.CPUMillicores, a.CPUMillicores)) / 1000)
		sc.Deploy.Resources.Reservations.MemoryBytes = types.UnitBytes(min(m.MemoryBytes, a.MemoryBytes))
	}
	ext := map[string]any{"source": string(ps.Source), "disk_bytes": a.DiskBytes}
	if ps.RenamedFrom != "" {
		ext["renamed_from"] = ps.RenamedFrom
	}
	if len(ps.SharedWith) > 0 {
		shared := make([]string, len(ps.SharedWith))
		for i, s := range ps.SharedWith {
			shared[i] = string(s)
		}
		slices.Sort(shared)
		ext["shared_with"] = shared
	}
	sc.Extensions = types.Extensions{"x-snapcompose": ext}
	return sc, nil
}

// newNameInverse returns the name target had in its source when it was
// renamed, so a link keeps answering to the old name; "" otherwise.
func newNameInverse(names map[string]string, target string) string {
	for from, to := range names {
		if to == target && from != target {
			return from
		}
	}
	return ""
}
