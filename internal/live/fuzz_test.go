package live

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// FuzzCapture feeds agent answers to the conversion: whatever an agent
// sends, it must not panic, and a snapshot it accepts keeps the rules —
// files under the captured path, unique sorted services, disk adding up to
// the files' bytes, no secret value.
func FuzzCapture(f *testing.F) {
	for _, seed := range []string{
		`{"path":"/var/app","files":[{"path":"/var/app/a","size":3,"digest":"sha256:x"}],"processes":[{"pid":1,"service":"api","exe":"/var/app/bin/api","env":[{"name":"DB_PASSWORD","value":"hunter2"},{"name":"PATH","value":"/bin"}]}],"ports":[{"protocol":"tcp","port":80,"service":"api"}],"recommendations":[{"service":"api","min_cpu_millicores":1,"desired_cpu_millicores":2}]}`,
		`{"files":[{"path":"/var/app/../etc/passwd","size":1,"digest":"d"}]}`,
		`{"processes":[{"service":"a","pid":2},{"service":"a","pid":1},{"service":"b"}],"files":[{"path":"/var/app/x","size":9223372036854775807,"digest":"d"},{"path":"/var/app/y","size":1,"digest":"d"}]}`,
		`{"ports":[{"protocol":"sctp","port":1}]}`,
		`{}`,
	} {
		f.Add([]byte(seed))
	}
	src := domain.Source{Type: domain.LiveSource, Host: "h", Path: "/var/app"}
	f.Fuzz(func(t *testing.T, body []byte) {
		var c agentapi.Capture
		if json.Unmarshal(body, &c) != nil {
			return
		}
		snap, err := convert(src, &c)
		if err != nil {
			return
		}
		var total int64
		for _, file := range snap.Files {
			if !within(src.Path, file.Path) {
				t.Fatalf("file %s is outside %s", file.Path, src.Path)
			}
			total += file.Size
		}
		var disk int64
		names := make([]string, len(snap.Services))
		for i, s := range snap.Services {
			names[i] = s.Name
			disk += s.Requested.DiskBytes
			if s.Requested.CPUMillicores < s.Minimum.CPUMillicores || s.Requested.MemoryBytes < s.Minimum.MemoryBytes {
				t.Fatalf("%s asks for less than it accepts: %+v < %+v", s.Name, s.Requested, s.Minimum)
			}
		}
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("services not sorted and unique: %v", names)
		}
		if len(snap.Services) > 0 && disk != total {
			t.Fatalf("disk %d does not add up to the files' %d bytes", disk, total)
		}
		for _, e := range snap.Env {
			if domain.IsSecretName(e.Name) && e.Value != "" {
				t.Fatalf("secret %s kept its value", e.Name)
			}
			if isNoise(e.Name) || strings.ContainsAny(e.Name, "=%") {
				t.Fatalf("variable %q should have been dropped", e.Name)
			}
		}
	})
}
