package usage

import (
	"path/filepath"
	"strconv"
	"strings"
)

// TraceName is a trace file's base name without .csv.gz or .csv: the
// Bitbrains VM (and the service) it describes.
func TraceName(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, ".gz")
	return strings.TrimSuffix(base, ".csv")
}

// CompareTraceNames orders trace files by their numeric stem when both have
// one (the trace's VMs are 1 to 1250), else as text.
func CompareTraceNames(a, b string) int {
	na, errA := strconv.Atoi(TraceName(a))
	nb, errB := strconv.Atoi(TraceName(b))
	if errA == nil && errB == nil && na != nb {
		return na - nb
	}
	return strings.Compare(a, b)
}
