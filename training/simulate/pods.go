package simulate

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Pod is one production task of the Alibaba OpenB trace: what it asked for
// and how it is classed.
type Pod struct {
	CPUMillicores int64
	MemoryMiB     int64
	QoS           string // LS, BE, Burstable, Guaranteed
	Phase         string // Running, Succeeded, Failed, Pending
}

// LoadPods reads openb_pod_list_default.csv (columns name, cpu_milli,
// memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase, ...). Pods with
// no CPU or memory are skipped: they cannot size a service. A malformed row
// is an error naming the file and line.
func LoadPods(path string) ([]Pod, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading pods: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, want := range []string{"cpu_milli", "memory_mib", "qos", "pod_phase"} {
		if _, ok := col[want]; !ok {
			return nil, fmt.Errorf("%s: no %s column (want the OpenB pod list: name,cpu_milli,memory_mib,...,qos,pod_phase)", path, want)
		}
	}
	var pods []Pod
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		cpu, err1 := strconv.ParseInt(rec[col["cpu_milli"]], 10, 64)
		mem, err2 := strconv.ParseInt(rec[col["memory_mib"]], 10, 64)
		if err1 != nil || err2 != nil || cpu < 0 || mem < 0 {
			return nil, fmt.Errorf("%s:%d: cpu_milli %q and memory_mib %q must be whole non-negative numbers", path, line, rec[col["cpu_milli"]], rec[col["memory_mib"]])
		}
		if cpu == 0 || mem == 0 {
			continue
		}
		pods = append(pods, Pod{CPUMillicores: cpu, MemoryMiB: mem, QoS: rec[col["qos"]], Phase: rec[col["pod_phase"]]})
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("%s: no pods with cpu and memory", path)
	}
	return pods, nil
}

// priorityOf turns a pod's QoS class into a source priority: latency
// sensitive first, best effort last.
func priorityOf(qos string) int {
	switch qos {
	case "LS":
		return 3
	case "Guaranteed":
		return 2
	case "Burstable":
		return 1
	}
	return 0
}
