package catalog

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// maxMappedPorts bounds the port mappings a template's short-syntax port
// ranges make in all.
const maxMappedPorts = 4096

// checkPortRanges bounds the one place where compose-go multiplies its input:
// it expands a short-syntax container port range into one mapping per port,
// at tens of microseconds each, so "1-65535:1-65535" alone takes seconds and a
// few thousand such lines take hours. It reads the document the way
// compose-go will (the same YAML library, interpolation, same-file extends)
// and refuses before compose-go starts. Anything it cannot read is left for
// compose-go to report.
func checkPortRanges(file, id string, body []byte) error {
	lookup := func(name string) (string, bool) {
		if name == "COMPOSE_PROJECT_NAME" {
			return loader.NormalizeProjectName(id), true
		}
		return "", false
	}
	total := 0
	dec := yaml.NewDecoder(bytes.NewReader(body))
	for {
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return nil // the end, or an error compose-go will report
		}
		top, _ := doc.(map[string]any)
		services, _ := top["services"].(map[string]any)
		own := map[string]int{}
		for _, name := range slices.Sorted(maps.Keys(services)) {
			svc, _ := services[name].(map[string]any)
			ports, _ := svc["ports"].([]any)
			for _, p := range ports {
				spec, ok := p.(string)
				if !ok {
					continue
				}
				if strings.Contains(spec, "$") {
					var err error
					if spec, err = strictSubstitute(spec, lookup); err != nil {
						continue
					}
				}
				n := containerRangeSize(spec)
				if n > maxPortsPerRange {
					return domain.Errorf(domain.EINVALID, "%s: services.%s.ports: %q maps a range of %d ports; a range may hold at most %d ports", file, truncate(name, 100), truncate(spec, 40), n, maxPortsPerRange)
				}
				own[name] += n
			}
		}
		// A service that extends another inherits its ports, so compose-go
		// expands them once more for every service that extends it.
		for _, name := range slices.Sorted(maps.Keys(services)) {
			total += withExtends(name, services, own, map[string]bool{})
			if total > maxMappedPorts {
				return domain.Errorf(domain.EINVALID, "%s: services: the port ranges map more than %d ports in all", file, maxMappedPorts)
			}
		}
	}
}

// withExtends returns the ports a service maps, counting those it inherits
// through `extends` in the same file.
func withExtends(name string, services map[string]any, own map[string]int, seen map[string]bool) int {
	if seen[name] || len(seen) > 100 {
		return 0 // a cycle or a chain compose-go refuses anyway
	}
	seen[name] = true
	n := own[name]
	svc, _ := services[name].(map[string]any)
	var base string
	switch e := svc["extends"].(type) {
	case string:
		base = e
	case map[string]any:
		if _, ok := e["file"]; !ok {
			base, _ = e["service"].(string)
		}
	}
	if base != "" {
		n += withExtends(base, services, own, seen)
	}
	return n
}

// containerRangeSize returns how many mappings compose-go makes of a short
// port spec, "[ip:][host:]container[/protocol]": one per container port.
func containerRangeSize(spec string) int {
	spec, _, _ = strings.Cut(spec, "/")
	container := spec[strings.LastIndex(spec, ":")+1:]
	lo, hi, isRange := strings.Cut(container, "-")
	if !isRange {
		return 1
	}
	first, err1 := strconv.Atoi(lo)
	last, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || last < first {
		return 1 // compose-go refuses it
	}
	return last - first + 1
}
