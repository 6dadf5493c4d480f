package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/snapcompose/snapcompose/internal/domain"
)

const exampleDir = "../../examples/seed/catalog"

// setup opens the example catalog.
func setup(t *testing.T) *Catalog {
	t.Helper()
	c, err := Open(exampleDir)
	if err != nil {
		t.Fatalf("Open(%q): %v", exampleDir, err)
	}
	return c
}

func templateSource(id string) domain.Source {
	return domain.Source{Type: domain.TemplateSource, ID: id, Priority: 1, Index: 0}
}

func retrieve(t *testing.T, c *Catalog, id string) *domain.Snapshot {
	t.Helper()
	snap, err := c.Retrieve(context.Background(), templateSource(id))
	if err != nil {
		t.Fatalf("Retrieve(%s): %v", id, err)
	}
	return snap
}

// load parses an inline template that must be valid.
func load(t *testing.T, name, body string) *domain.Snapshot {
	t.Helper()
	snap, err := LoadTemplate(context.Background(), name, []byte(body))
	if err != nil {
		t.Fatalf("LoadTemplate(%s): %v", name, err)
	}
	return snap
}

func service(t *testing.T, snap *domain.Snapshot, name string) domain.Service {
	t.Helper()
	for _, s := range snap.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("%s has no service %q", snap.Source.Ref(), name)
	return domain.Service{}
}

// wantError checks err is an *domain.Error with code whose message contains
// every fragment.
func wantError(t *testing.T, err error, code string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s error containing %q", code, fragments)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("got %T %v, want *domain.Error", err, err)
	}
	if de.Code != code {
		t.Errorf("got code %q, want %q (error: %v)", de.Code, code, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("got error %q, want it to contain %q", err, f)
		}
	}
}

// writeTree creates files (path -> content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func minimal(id string) string {
	return "x-snapcompose:\n  id: " + id + "\nservices:\n  web:\n    image: nginx:1.27-alpine\n"
}

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
	gb  = int64(1e9)
	mb  = int64(1e6)
)

func TestRetrieveExamples(t *testing.T) {
	t.Parallel()

	type wantService struct {
		name      string
		image     string
		ports     []domain.Port
		dependsOn []string
		volumes   []string
		requested domain.Resources
		minimum   domain.Resources
		optional  bool
	}
	tcp := func(host, container int) domain.Port {
		return domain.Port{Host: host, Container: container, Protocol: "tcp"}
	}
	udp := func(host, container int) domain.Port {
		return domain.Port{Host: host, Container: container, Protocol: "udp"}
	}
	redis := wantService{
		name: "redis", image: "redis:7.2-alpine", ports: []domain.Port{}, dependsOn: []string{}, volumes: []string{},
		requested: domain.Resources{CPUMillicores: 250, MemoryBytes: 384 * mib, DiskBytes: 1 * gb},
		minimum:   domain.Resources{CPUMillicores: 100, MemoryBytes: 128 * mib, DiskBytes: 1 * gb},
	}

	tests := []struct {
		name        string
		id          string
		description string
		tags        []string
		services    []wantService
		env         []domain.EnvVar
		files       []string
		volumes     []string
	}{
		{
			name:        "template_a web and database",
			id:          "template_a",
			description: "Order service - nginx reverse proxy, Go API, Postgres and a Redis session cache",
			tags:        []string{"web", "database"},
			services: []wantService{
				{
					name: "api", image: "ghcr.io/snapcompose/demo-orders-api:1.4.2",
					ports: []domain.Port{tcp(9090, 9090)}, dependsOn: []string{"db", "redis"}, volumes: []string{},
					requested: domain.Resources{CPUMillicores: 1000, MemoryBytes: 1 * gib, DiskBytes: 2 * gb},
					minimum:   domain.Resources{CPUMillicores: 500, MemoryBytes: 512 * mib, DiskBytes: 1 * gb},
				},
				{
					name: "db", image: "postgres:16.4-alpine",
					ports: []domain.Port{tcp(5432, 5432)}, dependsOn: []string{}, volumes: []string{"pgdata"},
					requested: domain.Resources{CPUMillicores: 1000, MemoryBytes: 2 * gib, DiskBytes: 40 * gb},
					minimum:   domain.Resources{CPUMillicores: 500, MemoryBytes: 1 * gib, DiskBytes: 20 * gb},
				},
				redis,
				{
					name: "web", image: "nginx:1.27-alpine",
					ports: []domain.Port{tcp(8080, 80)}, dependsOn: []string{"api"}, volumes: []string{},
					requested: domain.Resources{CPUMillicores: 500, MemoryBytes: 256 * mib, DiskBytes: 1 * gb},
					minimum:   domain.Resources{CPUMillicores: 100, MemoryBytes: 64 * mib, DiskBytes: 512 * mb},
				},
			},
			env: []domain.EnvVar{
				{Name: "APP_ENV", Value: "staging"},
				{Name: "LOG_LEVEL", Value: "info"},
				{Name: "ORDERS_API_TOKEN", Value: "tok_orders_5b2e0c47"},
				{Name: "POSTGRES_PASSWORD", Value: "orders-dev-7f3a91"},
			},
			files:   []string{"/etc/app/app.conf", "/etc/nginx/conf.d/default.conf"},
			volumes: []string{"pgdata"},
		},
		{
			name:        "template_b analytics and reporting",
			id:          "template_b",
			description: "Product analytics - event worker, Postgres warehouse, Redis queue and Metabase reports",
			tags:        []string{"analytics", "reporting"},
			services: []wantService{
				{
					name: "db", image: "postgres:16.4-alpine",
					ports: []domain.Port{tcp(5432, 5432)}, dependsOn: []string{}, volumes: []string{"pgdata"},
					requested: domain.Resources{CPUMillicores: 1500, MemoryBytes: 4 * gib, DiskBytes: 80 * gb},
					minimum:   domain.Resources{CPUMillicores: 750, MemoryBytes: 2 * gib, DiskBytes: 40 * gb},
				},
				redis,
				{
					name: "reporting", image: "metabase/metabase:v0.50.20",
					ports: []domain.Port{tcp(8080, 3000)}, dependsOn: []string{"db"}, volumes: []string{"mbdata"},
					requested: domain.Resources{CPUMillicores: 1000, MemoryBytes: 2 * gib, DiskBytes: 5 * gb},
					minimum:   domain.Resources{CPUMillicores: 500, MemoryBytes: 1 * gib, DiskBytes: 2 * gb},
					optional:  true,
				},
				{
					name: "worker", image: "ghcr.io/snapcompose/demo-analytics-worker:2.1.0",
					ports: []domain.Port{udp(8125, 8125)}, dependsOn: []string{"db", "redis"}, volumes: []string{"spool"},
					requested: domain.Resources{CPUMillicores: 1000, MemoryBytes: 1536 * mib, DiskBytes: 10 * gb},
					minimum:   domain.Resources{CPUMillicores: 500, MemoryBytes: 768 * mib, DiskBytes: 5 * gb},
				},
			},
			env: []domain.EnvVar{
				{Name: "APP_ENV", Value: "staging"},
				{Name: "LOG_LEVEL", Value: "debug"},
				{Name: "MB_ENCRYPTION_SECRET_KEY", Value: "mb-dev-0a9f7e4c2b6d8e1f"},
				{Name: "POSTGRES_PASSWORD", Value: "warehouse-dev-c81d2e"},
			},
			files:   []string{"/etc/analytics/pipeline.yaml", "/etc/app/app.conf"},
			volumes: []string{"mbdata", "pgdata", "spool"},
		},
	}
	c := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := templateSource(tt.id)
			snap := retrieve(t, c, tt.id)

			if !reflect.DeepEqual(snap.Source, src) {
				t.Errorf("got source %+v, want %+v", snap.Source, src)
			}
			if snap.Description != tt.description {
				t.Errorf("got description %q, want %q", snap.Description, tt.description)
			}
			if !reflect.DeepEqual(snap.Tags, tt.tags) {
				t.Errorf("got tags %q, want %q", snap.Tags, tt.tags)
			}
			if !reflect.DeepEqual(snap.Env, tt.env) {
				t.Errorf("got env %+v, want %+v", snap.Env, tt.env)
			}

			if len(snap.Services) != len(tt.services) {
				t.Fatalf("got %d services, want %d", len(snap.Services), len(tt.services))
			}
			for i, want := range tt.services {
				got := snap.Services[i]
				if got.Name != want.name {
					t.Errorf("service %d: got %q, want %q (services sorted by name)", i, got.Name, want.name)
					continue
				}
				if got.Image != want.image {
					t.Errorf("%s: got image %q, want %q", want.name, got.Image, want.image)
				}
				if !reflect.DeepEqual(got.Ports, want.ports) {
					t.Errorf("%s: got ports %+v, want %+v", want.name, got.Ports, want.ports)
				}
				if !reflect.DeepEqual(got.DependsOn, want.dependsOn) {
					t.Errorf("%s: got depends_on %q, want %q", want.name, got.DependsOn, want.dependsOn)
				}
				if !reflect.DeepEqual(got.Volumes, want.volumes) {
					t.Errorf("%s: got volumes %q, want %q", want.name, got.Volumes, want.volumes)
				}
				if got.Requested != want.requested {
					t.Errorf("%s: got requested %+v, want %+v", want.name, got.Requested, want.requested)
				}
				if got.Minimum != want.minimum {
					t.Errorf("%s: got minimum %+v, want %+v", want.name, got.Minimum, want.minimum)
				}
				if got.Optional != want.optional {
					t.Errorf("%s: got optional %v, want %v", want.name, got.Optional, want.optional)
				}
				for field, digest := range map[string]string{"Runtime": got.Runtime, "Digest": got.Digest} {
					if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
						t.Errorf("%s: got %s %q, want a sha256 digest", want.name, field, digest)
					}
				}
			}

			var wantFiles []domain.File
			for _, p := range tt.files {
				onDisk := filepath.Join(exampleDir, tt.id, "files", filepath.FromSlash(p))
				info, err := os.Stat(onDisk)
				if err != nil {
					t.Fatal(err)
				}
				wantFiles = append(wantFiles, domain.File{Path: p, Digest: fileDigest(t, onDisk), Size: info.Size(), Mode: uint32(info.Mode().Perm())})
			}
			if !reflect.DeepEqual(snap.Files, wantFiles) {
				t.Errorf("got files %+v, want %+v", snap.Files, wantFiles)
			}

			var gotVolumes []string
			for _, v := range snap.Volumes {
				gotVolumes = append(gotVolumes, v.Name)
				if !strings.HasPrefix(v.Digest, "sha256:") {
					t.Errorf("volume %s: got digest %q, want a sha256 digest", v.Name, v.Digest)
				}
			}
			if !reflect.DeepEqual(gotVolumes, tt.volumes) {
				t.Errorf("got volumes %q, want %q", gotVolumes, tt.volumes)
			}
		})
	}
}

// TestExampleCollisions pins what the seed manifest relies on: the two
// example templates collide on every kind of claim, share one service, and
// fit the templates-only manifest's limits.
func TestExampleCollisions(t *testing.T) {
	t.Parallel()
	c := setup(t)
	a, b := retrieve(t, c, "template_a"), retrieve(t, c, "template_b")

	hostPorts := func(s *domain.Snapshot) map[domain.Port]string {
		m := map[domain.Port]string{}
		for _, svc := range s.Services {
			for _, p := range svc.Ports {
				m[domain.Port{Host: p.Host, Protocol: p.Protocol}] = svc.Name
			}
		}
		return m
	}
	env := func(s *domain.Snapshot) map[string]string {
		m := map[string]string{}
		for _, e := range s.Env {
			m[e.Name] = e.Value
		}
		return m
	}
	files := func(s *domain.Snapshot) map[string]string {
		m := map[string]string{}
		for _, f := range s.Files {
			m[f.Path] = f.Digest
		}
		return m
	}
	volumes := func(s *domain.Snapshot) map[string]string {
		m := map[string]string{}
		for _, v := range s.Volumes {
			m[v.Name] = v.Digest
		}
		return m
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"port tcp/8080: web and reporting", func(t *testing.T) {
			k := domain.Port{Host: 8080, Protocol: "tcp"}
			if got, want := [2]string{hostPorts(a)[k], hostPorts(b)[k]}, [2]string{"web", "reporting"}; got != want {
				t.Errorf("got owners %q, want %q", got, want)
			}
		}},
		{"port tcp/5432: db and db", func(t *testing.T) {
			k := domain.Port{Host: 5432, Protocol: "tcp"}
			if got, want := [2]string{hostPorts(a)[k], hostPorts(b)[k]}, [2]string{"db", "db"}; got != want {
				t.Errorf("got owners %q, want %q", got, want)
			}
		}},
		{"service db differs", func(t *testing.T) {
			if service(t, a, "db").Digest == service(t, b, "db").Digest {
				t.Error("got equal db digests, want them different")
			}
			if service(t, a, "db").Runtime == service(t, b, "db").Runtime {
				t.Error("got equal db runtimes, want them different")
			}
		}},
		{"service redis is identical", func(t *testing.T) {
			ra, rb := service(t, a, "redis"), service(t, b, "redis")
			if ra.Runtime != rb.Runtime || ra.Digest != rb.Digest {
				t.Errorf("got redis %s/%s and %s/%s, want equal runtime and digest", ra.Runtime, ra.Digest, rb.Runtime, rb.Digest)
			}
		}},
		{"env LOG_LEVEL and POSTGRES_PASSWORD differ, APP_ENV agrees", func(t *testing.T) {
			ea, eb := env(a), env(b)
			if ea["LOG_LEVEL"] == eb["LOG_LEVEL"] || ea["LOG_LEVEL"] == "" {
				t.Errorf("got LOG_LEVEL %q and %q, want two different values", ea["LOG_LEVEL"], eb["LOG_LEVEL"])
			}
			if ea["POSTGRES_PASSWORD"] == eb["POSTGRES_PASSWORD"] || ea["POSTGRES_PASSWORD"] == "" {
				t.Error("got equal POSTGRES_PASSWORD values, want two different values")
			}
			if ea["APP_ENV"] != eb["APP_ENV"] {
				t.Errorf("got APP_ENV %q and %q, want equal", ea["APP_ENV"], eb["APP_ENV"])
			}
		}},
		{"file /etc/app/app.conf differs", func(t *testing.T) {
			fa, fb := files(a)["/etc/app/app.conf"], files(b)["/etc/app/app.conf"]
			if fa == "" || fb == "" || fa == fb {
				t.Errorf("got digests %q and %q, want two different files", fa, fb)
			}
		}},
		{"volume pgdata differs", func(t *testing.T) {
			va, vb := volumes(a)["pgdata"], volumes(b)["pgdata"]
			if va == "" || vb == "" || va == vb {
				t.Errorf("got digests %q and %q, want two different volumes", va, vb)
			}
		}},
		{"an optional service", func(t *testing.T) {
			if !service(t, b, "reporting").Optional {
				t.Error("got reporting not optional, want optional")
			}
		}},
		{"demand fits the templates-only limits", func(t *testing.T) {
			var total domain.Resources
			for _, s := range append(append([]domain.Service{}, a.Services...), b.Services...) {
				total = total.Add(s.Requested)
			}
			if total.CPUMillicores < 5000 || total.CPUMillicores > 7000 {
				t.Errorf("got %dm requested, want 5-7 cores", total.CPUMillicores)
			}
			if total.MemoryBytes > 32*gb || total.DiskBytes > 500*gb {
				t.Errorf("got %d bytes memory and %d bytes disk, want within 32GB and 500GB", total.MemoryBytes, total.DiskBytes)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t)
		})
	}
}

func TestLoadTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		want string   // the whole message, when it is ours
		frag []string // fragments, when compose-go words it
	}{
		{name: "cpu reservations above limits", file: "reservations_above_limits.yaml",
			want: "testdata/reservations_above_limits.yaml: services.db.deploy.resources.reservations.cpus: 2 cores is above limits.cpus 1 core"},
		{name: "memory reservations above limits", file: "memory_reservations_above_limits.yaml",
			want: "testdata/memory_reservations_above_limits.yaml: services.db.deploy.resources.reservations.memory: 2GiB is above limits.memory 1GiB"},
		{name: "min_disk above disk", file: "min_disk_above_disk.yaml",
			want: "testdata/min_disk_above_disk.yaml: services.db.x-snapcompose.min_disk: 20GB is above disk 10GB"},
		{name: "disk not a quantity", file: "bad_disk.yaml",
			frag: []string{"testdata/bad_disk.yaml: services.db.x-snapcompose.disk: invalid quantity \"10 gigs\""}},
		{name: "disk a bare number", file: "disk_number.yaml",
			want: "testdata/disk_number.yaml: services.db.x-snapcompose.disk: must be a size with a unit such as \"10GB\", not a number"},
		{name: "unknown template key", file: "unknown_template_key.yaml",
			want: "testdata/unknown_template_key.yaml: x-snapcompose.owner: unknown key; the accepted keys are description, env, id, tags"},
		{name: "unknown service key", file: "unknown_service_key.yaml",
			want: "testdata/unknown_service_key.yaml: services.web.x-snapcompose.size: unknown key; the accepted keys are disk, latency_sensitive, min_disk, optional"},
		{name: "id does not match file", file: "id_mismatch.yaml",
			want: "testdata/id_mismatch.yaml: x-snapcompose.id: \"template_x\" does not match the template's id \"id_mismatch\" (from its file name)"},
		{name: "block missing", file: "missing_block.yaml",
			frag: []string{"testdata/missing_block.yaml: x-snapcompose: missing"}},
		{name: "block not a mapping", file: "block_not_mapping.yaml",
			want: "testdata/block_not_mapping.yaml: x-snapcompose: must be a mapping with keys description, env, id, tags, not a string"},
		{name: "env number", file: "env_number.yaml",
			want: "testdata/env_number.yaml: 2 problems\n" +
				"  x-snapcompose.env.DB_PASSWORD: must be a string, not a number; quote it (\"...\") so it is read as text\n" +
				"  x-snapcompose.env.DB_PORT: must be a string, not a number; quote it (\"...\") so it is read as text"},
		{name: "env boolean", file: "env_bool.yaml",
			want: "testdata/env_bool.yaml: x-snapcompose.env.FEATURE_X: must be a string, not a boolean; quote it (\"...\") so it is read as text"},
		{name: "env date", file: "env_date.yaml",
			want: "testdata/env_date.yaml: x-snapcompose.env.RELEASE_DATE: must be a string, not a date; quote it (\"...\") so it is read as text"},
		{name: "env name", file: "env_bad_name.yaml",
			frag: []string{"testdata/env_bad_name.yaml: x-snapcompose.env: \"1ST_KEY\" is not a valid variable name"}},
		{name: "tags not a list", file: "tags_not_list.yaml",
			want: "testdata/tags_not_list.yaml: x-snapcompose.tags: must be a list of strings, not a string"},
		{name: "optional not a boolean", file: "optional_not_bool.yaml",
			want: "testdata/optional_not_bool.yaml: services.web.x-snapcompose.optional: must be true or false, not a string"},
		{name: "latency_sensitive not a boolean", file: "latency_not_bool.yaml",
			want: "testdata/latency_not_bool.yaml: services.web.x-snapcompose.latency_sensitive: must be true or false, not a number"},
		{name: "optional and latency sensitive", file: "optional_and_latency.yaml",
			want: "testdata/optional_and_latency.yaml: services.web.x-snapcompose: optional and latency_sensitive: a service others wait on cannot be left out"},
		{name: "protocol", file: "bad_protocol.yaml",
			want: "testdata/bad_protocol.yaml: services.web.ports: protocol \"sctp\" of published port \"8080\" is not supported: use tcp or udp"},
		{name: "two services on one host port", file: "port_collision.yaml",
			want: "testdata/port_collision.yaml: services.web.ports: host port tcp/8080 is also published by service api"},
		{name: "one host port to two container ports", file: "port_twice.yaml",
			want: "testdata/port_twice.yaml: services.web.ports: host port tcp/8080 is published twice, to container ports 80 and 81"},
		{name: "port range too large", file: "port_range_too_large.yaml",
			want: "testdata/port_range_too_large.yaml: services.web.ports: published port \"8000-9100\": a range may hold at most 1024 ports"},
		{name: "port range compose-go would expand", file: "port_range_huge.yaml",
			want: "testdata/port_range_huge.yaml: services.web.ports: \"1-65535:1-65535\" maps a range of 65535 ports; a range may hold at most 1024 ports"},
		{name: "port range from interpolation", file: "port_range_interpolated.yaml",
			want: "testdata/port_range_interpolated.yaml: services.web.ports: \"1-65535:1-65535\" maps a range of 65535 ports; a range may hold at most 1024 ports"},
		{name: "port ranges multiplied by extends", file: "port_range_extends.yaml",
			want: "testdata/port_range_extends.yaml: services: the port ranges map more than 4096 ports in all"},
		{name: "depends_on cycle", file: "cycle.yaml",
			want: "testdata/cycle.yaml: services.a.depends_on: dependency cycle: a -> b -> c -> a"},
		{name: "service depending on itself", file: "self_dependency.yaml",
			want: "testdata/self_dependency.yaml: services.worker.depends_on: dependency cycle: worker -> worker"},
		{name: "cycle through links and volumes_from", file: "cycle_links.yaml",
			want: "testdata/cycle_links.yaml: services.api.depends_on: dependency cycle: api -> db -> api"},
		{name: "unset variable", file: "unset_variable.yaml",
			frag: []string{"testdata/unset_variable.yaml: ", "services.web.image", `variable "NGINX_TAG" is not set`, "${NGINX_TAG:-value}"}},
		{name: "include", file: "include.yaml",
			frag: []string{"testdata/include.yaml: include and extends.file are not supported"}},
		{name: "extends.file", file: "extends_file.yaml",
			frag: []string{"testdata/extends_file.yaml: include and extends.file are not supported", "/etc/base/compose.yaml"}},
		{name: "yaml syntax", file: "syntax_error.yaml", // line 6 is indented wrong
			frag: []string{"testdata/syntax_error.yaml: yaml: ", "line 6"}},
		{name: "schema", file: "schema_error.yaml",
			frag: []string{"testdata/schema_error.yaml: ", "services.web.imagee"}},
		{name: "undefined dependency", file: "undefined_dependency.yaml",
			frag: []string{"testdata/undefined_dependency.yaml: ", `depends on undefined service "api"`}},
		{name: "jobs", file: "jobs.yaml",
			want: "testdata/jobs.yaml: jobs: jobs are not supported in templates; declare the workload as a service"},
		{name: "every problem at once", file: "many_problems.yaml",
			frag: []string{"testdata/many_problems.yaml: 3 problems", "x-snapcompose.colour: unknown key", "x-snapcompose.env.RETRIES: must be a string", "services.web.x-snapcompose.disk: invalid quantity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := "testdata/" + tt.file
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := LoadTemplate(context.Background(), file, body)
			if snap != nil {
				t.Errorf("got a snapshot with the error, want nil")
			}
			wantError(t, err, domain.EINVALID, tt.frag...)
			if !strings.HasPrefix(err.Error(), file+": ") {
				t.Errorf("got %q, want it to begin with %q", err, file+": ")
			}
			if strings.Count(err.Error(), file) != 1 {
				t.Errorf("got %q, want the file named once", err)
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestLoadTemplateKeepsSecretsOutOfErrors(t *testing.T) {
	t.Parallel()
	body := "x-snapcompose:\n  id: secrets\n  env:\n    DB_PASSWORD: 987654321\n    API_TOKEN: [\"s3cr3t-t0ken\"]\n" +
		"services:\n  web:\n    image: nginx:1.27-alpine\n"
	_, err := LoadTemplate(context.Background(), "secrets.yaml", []byte(body))
	wantError(t, err, domain.EINVALID, "x-snapcompose.env.DB_PASSWORD", "x-snapcompose.env.API_TOKEN")
	for _, secret := range []string{"987654321", "s3cr3t-t0ken"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("got %q, want it without the value %q", err, secret)
		}
	}
}

func TestLoadTemplateNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		wantID  string
		wantErr string
	}{
		{name: "single file yaml", file: "cat/web.yaml", wantID: "web"},
		{name: "single file yml", file: "web.yml", wantID: "web"},
		{name: "directory form", file: "cat/web/compose.yaml", wantID: "web"},
		{name: "directory form yml", file: "web/compose.yml", wantID: "web"},
		{name: "other extension", file: "web.json", wantErr: "web.json: a template file is named <id>.yaml, <id>.yml or <id>/compose.yaml"},
		{name: "compose.yaml without directory", file: "compose.yaml", wantErr: `compose.yaml: "." is not a valid template id`},
		{name: "invalid id", file: "my web.yaml", wantErr: `my web.yaml: "my web" is not a valid template id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap, err := LoadTemplate(context.Background(), tt.file, []byte(minimal(tt.wantID)))
			if tt.wantErr != "" {
				wantError(t, err, domain.EINVALID, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := snap.Source, (domain.Source{Type: domain.TemplateSource, ID: tt.wantID}); !reflect.DeepEqual(got, want) {
				t.Errorf("got source %+v, want %+v", got, want)
			}
		})
	}
}

func TestLoadTemplateTooLarge(t *testing.T) {
	t.Parallel()
	body := []byte(minimal("big") + "# " + strings.Repeat("x", MaxTemplateBytes) + "\n")
	_, err := LoadTemplate(context.Background(), "big.yaml", body)
	wantError(t, err, domain.EINVALID, "big.yaml: ", "is larger than a template may be (4MiB)")
}

func TestPorts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		ports string
		want  []domain.Port
	}{
		{name: "short syntax", ports: `["8080:80"]`, want: []domain.Port{{Host: 8080, Container: 80, Protocol: "tcp"}}},
		{name: "udp", ports: `["53:5353/udp"]`, want: []domain.Port{{Host: 53, Container: 5353, Protocol: "udp"}}},
		{name: "not published", ports: `["80", "443"]`, want: []domain.Port{}},
		{name: "published zero is not claimed", ports: `[{target: 80, published: "0"}]`, want: []domain.Port{}},
		{name: "range to one container port", ports: `["8000-8002:80"]`, want: []domain.Port{
			{Host: 8000, Container: 80, Protocol: "tcp"}, {Host: 8001, Container: 80, Protocol: "tcp"}, {Host: 8002, Container: 80, Protocol: "tcp"}}},
		{name: "range to range", ports: `["9000-9001:7000-7001"]`, want: []domain.Port{
			{Host: 9000, Container: 7000, Protocol: "tcp"}, {Host: 9001, Container: 7001, Protocol: "tcp"}}},
		{name: "long syntax range", ports: `[{target: 80, published: "8100-8101", protocol: udp}]`, want: []domain.Port{
			{Host: 8100, Container: 80, Protocol: "udp"}, {Host: 8101, Container: 80, Protocol: "udp"}}},
		{name: "sorted by protocol then host", ports: `["9090:90/udp", "9000:90", "8000:80/udp", "8080:80"]`, want: []domain.Port{
			{Host: 8080, Container: 80, Protocol: "tcp"}, {Host: 9000, Container: 90, Protocol: "tcp"},
			{Host: 8000, Container: 80, Protocol: "udp"}, {Host: 9090, Container: 90, Protocol: "udp"}}},
		{name: "one mapping on two addresses", ports: `["127.0.0.1:8080:80", "[::1]:8080:80"]`, want: []domain.Port{{Host: 8080, Container: 80, Protocol: "tcp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap := load(t, "ports.yaml", "x-snapcompose: {id: ports}\nservices:\n  web:\n    image: nginx:1.27-alpine\n    ports: "+tt.ports+"\n")
			if got := service(t, snap, "web").Ports; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		service       string
		wantRequested domain.Resources
		wantMinimum   domain.Resources
	}{
		{name: "none declared", service: "image: busybox:1.36"},
		{name: "limits only are both",
			service:       "image: busybox:1.36\n    deploy: {resources: {limits: {cpus: '1.5', memory: 1G}}}",
			wantRequested: domain.Resources{CPUMillicores: 1500, MemoryBytes: gib},
			wantMinimum:   domain.Resources{CPUMillicores: 1500, MemoryBytes: gib}},
		{name: "reservations only are both",
			service:       "image: busybox:1.36\n    deploy: {resources: {reservations: {cpus: '0.25', memory: 256M}}}",
			wantRequested: domain.Resources{CPUMillicores: 250, MemoryBytes: 256 * mib},
			wantMinimum:   domain.Resources{CPUMillicores: 250, MemoryBytes: 256 * mib}},
		{name: "each resource on its own",
			service:       "image: busybox:1.36\n    deploy: {resources: {limits: {cpus: '2'}, reservations: {memory: 512M}}}",
			wantRequested: domain.Resources{CPUMillicores: 2000, MemoryBytes: 512 * mib},
			wantMinimum:   domain.Resources{CPUMillicores: 2000, MemoryBytes: 512 * mib}},
		{name: "cores rounded to the nearest millicore",
			service:       "image: busybox:1.36\n    deploy: {resources: {limits: {cpus: '0.3337'}, reservations: {cpus: '0.1'}}}",
			wantRequested: domain.Resources{CPUMillicores: 334},
			wantMinimum:   domain.Resources{CPUMillicores: 100}},
		{name: "legacy cpus and mem_limit",
			service:       "image: busybox:1.36\n    cpus: 0.5\n    mem_limit: 300m\n    mem_reservation: 100m",
			wantRequested: domain.Resources{CPUMillicores: 500, MemoryBytes: 300 * mib},
			wantMinimum:   domain.Resources{CPUMillicores: 500, MemoryBytes: 100 * mib}},
		{name: "replicas multiply cpu and memory, not disk",
			service:       "image: busybox:1.36\n    deploy: {replicas: 3, resources: {limits: {cpus: '1', memory: 1G}, reservations: {cpus: '0.5', memory: 512M}}}\n    x-snapcompose: {disk: 10GB}",
			wantRequested: domain.Resources{CPUMillicores: 3000, MemoryBytes: 3 * gib, DiskBytes: 10 * gb},
			wantMinimum:   domain.Resources{CPUMillicores: 1500, MemoryBytes: 1536 * mib, DiskBytes: 10 * gb}},
		{name: "disk and min_disk",
			service:       "image: busybox:1.36\n    x-snapcompose: {disk: 1.5TB, min_disk: 512GiB}",
			wantRequested: domain.Resources{DiskBytes: 1500 * gb},
			wantMinimum:   domain.Resources{DiskBytes: 512 * gib}},
		{name: "min_disk alone is both",
			service:       "image: busybox:1.36\n    x-snapcompose: {min_disk: 20GB}",
			wantRequested: domain.Resources{DiskBytes: 20 * gb},
			wantMinimum:   domain.Resources{DiskBytes: 20 * gb}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap := load(t, "res.yaml", "x-snapcompose: {id: res}\nservices:\n  app:\n    "+tt.service+"\n")
			got := service(t, snap, "app")
			if got.Requested != tt.wantRequested {
				t.Errorf("got requested %+v, want %+v", got.Requested, tt.wantRequested)
			}
			if got.Minimum != tt.wantMinimum {
				t.Errorf("got minimum %+v, want %+v", got.Minimum, tt.wantMinimum)
			}
		})
	}
}

func TestDependsOn(t *testing.T) {
	t.Parallel()
	body := `
x-snapcompose: {id: deps}
services:
  app:
    image: busybox:1.36
    depends_on:
      db: {condition: service_healthy}
      debug: {condition: service_started, required: false}
    links: ["cache:redis", "queue"]
    volumes_from: ["data:ro", "container:legacy"]
  sidecar:
    image: busybox:1.36
    network_mode: "service:app"
  db: {image: "postgres:16.4-alpine"}
  cache: {image: "redis:7.2-alpine"}
  queue: {image: "rabbitmq:3.13-alpine"}
  data: {image: "busybox:1.36"}
  debug:
    image: busybox:1.36
    profiles: [debug]
`
	snap := load(t, "deps.yaml", body)
	tests := []struct {
		name    string
		service string
		want    []string
	}{
		{name: "depends_on, links and volumes_from; not containers nor disabled services", service: "app", want: []string{"cache", "data", "db", "queue"}},
		{name: "network_mode service", service: "sidecar", want: []string{"app"}},
		{name: "none", service: "db", want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := service(t, snap, tt.service).DependsOn; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("profile-gated services are left out", func(t *testing.T) {
		t.Parallel()
		for _, s := range snap.Services {
			if s.Name == "debug" {
				t.Errorf("got service debug, want it left out (its profile is not active)")
			}
		}
	})
}

// TestDigests checks what Runtime and Digest say: two services run the same
// thing when only their ports, dependencies, resources or optionality differ.
func TestDigests(t *testing.T) {
	t.Parallel()
	const base = "image: redis:7.2-alpine\n    command: [redis-server, --save, '']\n    environment: {MODE: cache}"
	tests := []struct {
		name        string
		a, b        string
		sameRuntime bool
		sameDigest  bool
	}{
		{name: "identical", a: base, b: base, sameRuntime: true, sameDigest: true},
		{name: "key order does not matter", a: base,
			b:           "environment: {MODE: cache}\n    command: [redis-server, --save, '']\n    image: redis:7.2-alpine",
			sameRuntime: true, sameDigest: true},
		{name: "ports", a: base, b: base + "\n    ports: ['6379:6379']", sameRuntime: true},
		{name: "resources", a: base, b: base + "\n    deploy: {resources: {limits: {cpus: '1'}}}", sameRuntime: true},
		{name: "disk", a: base, b: base + "\n    x-snapcompose: {disk: 1GB}", sameRuntime: true},
		{name: "optional", a: base, b: base + "\n    x-snapcompose: {optional: true}", sameRuntime: true},
		{name: "depends_on", a: base, b: base + "\n    depends_on: [other]", sameRuntime: true},
		{name: "environment", a: base, b: "image: redis:7.2-alpine\n    command: [redis-server, --save, '']\n    environment: {MODE: store}"},
		{name: "image", a: base, b: "image: redis:7.4-alpine\n    command: [redis-server, --save, '']\n    environment: {MODE: cache}"},
		{name: "command", a: base, b: "image: redis:7.2-alpine\n    command: [redis-server]\n    environment: {MODE: cache}"},
		{name: "mount", a: base, b: base + "\n    volumes: ['/etc/redis.conf:/etc/redis.conf:ro']"},
		{name: "healthcheck", a: base, b: base + "\n    healthcheck: {test: [CMD, redis-cli, ping]}"},
		{name: "deploy beyond resources", a: base, b: base + "\n    deploy: {restart_policy: {condition: on-failure}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := func(id, svc string) string {
				return "x-snapcompose: {id: " + id + "}\nservices:\n  other: {image: 'busybox:1.36'}\n  cache:\n    " + svc + "\n"
			}
			a := service(t, load(t, "a.yaml", doc("a", tt.a)), "cache")
			b := service(t, load(t, "b.yaml", doc("b", tt.b)), "cache")
			if got := a.Runtime == b.Runtime; got != tt.sameRuntime {
				t.Errorf("got equal runtime %v, want %v", got, tt.sameRuntime)
			}
			if got := a.Digest == b.Digest; got != tt.sameDigest {
				t.Errorf("got equal digest %v, want %v", got, tt.sameDigest)
			}
		})
	}
}

func TestVolumes(t *testing.T) {
	t.Parallel()
	doc := func(id, decl string) string {
		return "x-snapcompose: {id: " + id + "}\nservices:\n  db:\n    image: postgres:16.4-alpine\n" +
			"    volumes: [data:/var/lib/postgresql/data, /srv/x:/x, /anonymous, {type: tmpfs, target: /tmp}]\n" +
			"volumes:\n  data: " + decl + "\n  unused: {}\n"
	}
	tests := []struct {
		name       string
		a, b       string
		sameDigest bool
	}{
		// Whether the data is shared is the composer's call (the volume's users
		// are part of its claim); the declarations alone are alike.
		{name: "default declarations are alike", a: "{}", b: "{}", sameDigest: true},
		{name: "a driver counts", a: "{}", b: "{driver: nfs}"},
		{name: "an explicit name is shared", a: "{name: shared-data}", b: "{name: shared-data}", sameDigest: true},
		{name: "an external volume is shared", a: "{external: true}", b: "{external: true}", sameDigest: true},
		{name: "labels count", a: "{name: shared-data}", b: "{name: shared-data, labels: {tier: gold}}"},
		{name: "driver options count", a: "{name: shared-data}", b: "{name: shared-data, driver_opts: {type: tmpfs}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := load(t, "a.yaml", doc("a", tt.a)), load(t, "b.yaml", doc("b", tt.b))
			for _, snap := range []*domain.Snapshot{a, b} {
				if len(snap.Volumes) != 1 || snap.Volumes[0].Name != "data" {
					t.Fatalf("got volumes %+v, want only data (unused and unnamed ones are not listed)", snap.Volumes)
				}
				if got := service(t, snap, "db").Volumes; !reflect.DeepEqual(got, []string{"data"}) {
					t.Errorf("got service volumes %q, want [data]", got)
				}
			}
			if got := a.Volumes[0].Digest == b.Volumes[0].Digest; got != tt.sameDigest {
				t.Errorf("got equal digests %v, want %v", got, tt.sameDigest)
			}
		})
	}
}

// TestInterpolationIgnoresProcessEnvironment cannot run in parallel: it sets
// a process environment variable.
func TestInterpolationIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("SNAPCOMPOSE_TEST_NGINX_TAG", "from-the-machine")
	body := "x-snapcompose: {id: interp}\nservices:\n  web:\n    image: nginx:${SNAPCOMPOSE_TEST_NGINX_TAG:-1.27-alpine}\n    environment: {GREETING: \"$${NOT_A_VARIABLE}\"}\n"
	snap := load(t, "interp.yaml", body)
	if got, want := service(t, snap, "web").Image, "nginx:1.27-alpine"; got != want {
		t.Errorf("got image %q, want %q", got, want)
	}
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	c := setup(t)
	tests := []struct {
		name string
		run  func() (any, error)
	}{
		{name: "template_a", run: func() (any, error) { return c.Retrieve(context.Background(), templateSource("template_a")) }},
		{name: "template_b", run: func() (any, error) { return c.Retrieve(context.Background(), templateSource("template_b")) }},
		{name: "cycle error", run: func() (any, error) {
			body, err := os.ReadFile("testdata/cycle.yaml")
			if err != nil {
				return nil, err
			}
			_, err = LoadTemplate(context.Background(), "cycle.yaml", body)
			return err.Error(), nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			for range 10 {
				again, err := tt.run()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(first, again) {
					t.Fatalf("got %+v, then %+v; want the same", first, again)
				}
			}
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"file.txt": "x"})
	tests := []struct {
		name string
		dir  string
		want string
	}{
		{name: "missing", dir: filepath.Join(dir, "nope"), want: `catalog directory "` + filepath.Join(dir, "nope") + `" does not exist`},
		{name: "a file", dir: filepath.Join(dir, "file.txt"), want: `catalog "` + filepath.Join(dir, "file.txt") + `" is not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Open(tt.dir)
			wantError(t, err, domain.EINVALID, tt.want)
		})
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		want    []string
		wantErr []string
	}{
		{name: "examples", files: nil, want: []string{"template_a", "template_b"}},
		{name: "both forms and extensions", files: map[string]string{
			"b.yml": minimal("b"), "a.yaml": minimal("a"), "c/compose.yaml": minimal("c"), "d/compose.yml": minimal("d"),
			"README.md": "# catalog", ".hidden.yaml": "", "notes/plain.txt": "", "c/files/etc/x.conf": "",
		}, want: []string{"a", "b", "c", "d"}},
		{name: "empty", files: map[string]string{}, want: []string{}},
		{name: "defined twice", files: map[string]string{"a.yaml": minimal("a"), "a/compose.yaml": minimal("a")},
			wantErr: []string{`template "a" is defined more than once: `, "a.yaml and ", filepath.Join("a", "compose.yaml")}},
		{name: "invalid id", files: map[string]string{"my template.yaml": minimal("x")},
			wantErr: []string{"my template.yaml: \"my template\" is not a valid template id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := setup(t)
			if tt.files != nil {
				var err error
				if c, err = Open(writeTree(t, tt.files)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.IDs()
			if tt.wantErr != nil {
				wantError(t, err, domain.EINVALID, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRetrieve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		files    map[string]string
		prepare  func(t *testing.T, dir string)
		src      domain.Source
		wantCode string
		wantErr  func(dir string) []string
		check    func(t *testing.T, snap *domain.Snapshot)
	}{
		{
			name:  "single file form has no files",
			files: map[string]string{"web.yml": minimal("web")},
			src:   templateSource("web"),
			check: func(t *testing.T, snap *domain.Snapshot) {
				if len(snap.Files) != 0 || len(snap.Services) != 1 {
					t.Errorf("got %d files and %d services, want 0 and 1", len(snap.Files), len(snap.Services))
				}
				if !reflect.DeepEqual(snap.Source, templateSource("web")) {
					t.Errorf("got source %+v, want the one asked for", snap.Source)
				}
			},
		},
		{
			name:  "directory form without files",
			files: map[string]string{"web/compose.yaml": minimal("web")},
			src:   templateSource("web"),
			check: func(t *testing.T, snap *domain.Snapshot) {
				if snap.Files == nil || len(snap.Files) != 0 {
					t.Errorf("got files %+v, want an empty list", snap.Files)
				}
			},
		},
		{
			name: "files sorted by path, with modes",
			files: map[string]string{
				"web/compose.yaml": minimal("web"), "web/files/etc/b.conf": "b", "web/files/etc/a/z.conf": "z",
				"web/files/usr/local/bin/run.sh": "#!/bin/sh\n", "web/files/etc/a.conf": "a",
			},
			prepare: func(t *testing.T, dir string) {
				if err := os.Chmod(filepath.Join(dir, "web/files/usr/local/bin/run.sh"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			src: templateSource("web"),
			check: func(t *testing.T, snap *domain.Snapshot) {
				digest := func(s string) string {
					sum := sha256.Sum256([]byte(s))
					return "sha256:" + hex.EncodeToString(sum[:])
				}
				want := []domain.File{
					{Path: "/etc/a.conf", Digest: digest("a"), Size: 1, Mode: 0o644},
					{Path: "/etc/a/z.conf", Digest: digest("z"), Size: 1, Mode: 0o644},
					{Path: "/etc/b.conf", Digest: digest("b"), Size: 1, Mode: 0o644},
					{Path: "/usr/local/bin/run.sh", Digest: digest("#!/bin/sh\n"), Size: 10, Mode: 0o755},
				}
				if !reflect.DeepEqual(snap.Files, want) {
					t.Errorf("got files %+v, want %+v", snap.Files, want)
				}
			},
		},
		{
			name:     "unknown id",
			files:    map[string]string{"template_a.yaml": minimal("template_a"), "template_b/compose.yaml": minimal("template_b")},
			src:      templateSource("template_c"),
			wantCode: domain.ENOTFOUND,
			wantErr: func(dir string) []string {
				return []string{`template "template_c" not found in catalog ` + dir + ` (have: template_a, template_b)`}
			},
		},
		{
			name:     "id that would leave the catalog",
			files:    map[string]string{"a.yaml": minimal("a")},
			src:      templateSource("../a"),
			wantCode: domain.ENOTFOUND,
			wantErr: func(dir string) []string {
				return []string{`template "../a" not found in catalog ` + dir + ` (have: a)`}
			},
		},
		{
			name:     "both forms",
			files:    map[string]string{"web.yaml": minimal("web"), "web/compose.yaml": minimal("web")},
			src:      templateSource("web"),
			wantCode: domain.EINVALID,
			wantErr: func(dir string) []string {
				return []string{`template "web" is defined more than once: ` + filepath.Join(dir, "web.yaml") + " and " + filepath.Join(dir, "web", "compose.yaml")}
			},
		},
		{
			name:     "a live source",
			files:    map[string]string{"web.yaml": minimal("web")},
			src:      domain.Source{Type: domain.LiveSource, Host: "h", Path: "/p"},
			wantCode: domain.EINVALID,
			wantErr:  func(string) []string { return []string{"the template catalog cannot retrieve live source live:h:/p"} },
		},
		{
			name:     "invalid template names the file",
			files:    map[string]string{"web/compose.yaml": minimal("other")},
			src:      templateSource("web"),
			wantCode: domain.EINVALID,
			wantErr: func(dir string) []string {
				return []string{filepath.Join(dir, "web", "compose.yaml") + `: x-snapcompose.id: "other" does not match the template's id "web"`}
			},
		},
		{
			name:  "symlink in files",
			files: map[string]string{"web/compose.yaml": minimal("web"), "web/files/etc/real.conf": "x"},
			prepare: func(t *testing.T, dir string) {
				if err := os.Symlink("real.conf", filepath.Join(dir, "web/files/etc/link.conf")); err != nil {
					t.Fatal(err)
				}
			},
			src:      templateSource("web"),
			wantCode: domain.EINVALID,
			wantErr: func(dir string) []string {
				return []string{filepath.Join(dir, "web", "files", "etc", "link.conf") + " is a symbolic link; only regular files and directories are accepted"}
			},
		},
		{
			name:  "named pipe in files",
			files: map[string]string{"web/compose.yaml": minimal("web"), "web/files/run/.keep": ""},
			prepare: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "web/files/run/app.fifo"), 0o644); err != nil {
					t.Skipf("cannot make a fifo here: %v", err)
				}
			},
			src:      templateSource("web"),
			wantCode: domain.EINVALID,
			wantErr: func(dir string) []string {
				return []string{filepath.Join(dir, "web", "files", "run", "app.fifo") + " is a named pipe; only regular files and directories are accepted"}
			},
		},
		{
			name:     "files is not a directory",
			files:    map[string]string{"web/compose.yaml": minimal("web"), "web/files": "x"},
			src:      templateSource("web"),
			wantCode: domain.EINVALID,
			wantErr: func(dir string) []string {
				return []string{filepath.Join(dir, "web", "files") + " is a regular file; it must be a directory"}
			},
		},
		{
			name:     "template file too large",
			files:    map[string]string{"web.yaml": minimal("web") + "# " + strings.Repeat("x", MaxTemplateBytes)},
			src:      templateSource("web"),
			wantCode: domain.EINVALID,
			wantErr: func(dir string) []string {
				return []string{filepath.Join(dir, "web.yaml") + ": ", "is larger than a template may be (4MiB)"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, tt.files)
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := c.Retrieve(context.Background(), tt.src)
			if tt.wantErr != nil {
				wantError(t, err, tt.wantCode, tt.wantErr(dir)...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, snap)
		})
	}
}

func TestRetrieveCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := setup(t).Retrieve(ctx, templateSource("template_a"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestWalkFilesLimits uses an in-memory tree: paths this long and trees this
// large are awkward to make on a real disk.
func TestWalkFilesLimits(t *testing.T) {
	t.Parallel()
	long := "files/" + strings.Repeat("d/", MaxPathBytes/2) + "x"
	many := fstest.MapFS{}
	for i := range MaxFiles {
		many[fmt.Sprintf("files/f%06d", i)] = &fstest.MapFile{Data: []byte("x")}
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{name: "path too long", fsys: fstest.MapFS{long: {Data: []byte("x")}}, want: "the path in the environment is longer than 4096 bytes"},
		{name: "too many entries", fsys: many, want: "shown/files holds more than 100000 files and directories"},
		{name: "invalid UTF-8", fsys: fstest.MapFS{"files/bad\xff.conf": {Data: []byte("x")}}, want: "the path is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := walkFiles(context.Background(), tt.fsys, "files", "shown/files")
			wantError(t, err, domain.EINVALID, tt.want)
		})
	}
}

func BenchmarkLoadTemplate(b *testing.B) {
	body, err := os.ReadFile(filepath.Join(exampleDir, "template_b", "compose.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadTemplate(context.Background(), "template_b/compose.yaml", body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLatencySensitive(t *testing.T) {
	snap := load(t, "lat.yaml", `
x-snapcompose:
  id: lat
services:
  db:
    image: postgres:16
    x-snapcompose: {latency_sensitive: true}
  batch:
    image: busybox:1
`)
	for _, s := range snap.Services {
		if want := s.Name == "db"; s.LatencySensitive != want {
			t.Errorf("%s: latency sensitive %v, want %v", s.Name, s.LatencySensitive, want)
		}
	}
}
