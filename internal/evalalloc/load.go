package evalalloc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/usage"
)

// rawSample is the part of a usage.Sample the evaluation uses.
type rawSample struct {
	unix           int64
	cpu, cpuCap    float64 // millicores
	memory, memCap float64 // bytes
}

// rawSeries is one trace file as read.
type rawSeries struct {
	name    string
	path    string
	samples []rawSample
	stats   usage.Stats
}

// ListFiles returns the .csv and .csv.gz files of dir in natural order (2
// before 10), or an EINVALID error naming dir when there are none, and
// naming both files when two are the same VM (1.csv and 1.csv.gz).
func ListFiles(dir string) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "--usage: %v", pathError(err))
	}
	if !info.IsDir() {
		return nil, domain.Errorf(domain.EINVALID, "--usage: %s is not a directory: want the directory of a Bitbrains trace (one .csv or .csv.gz file per VM)", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "--usage: %v", pathError(err))
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".csv.gz") || strings.HasSuffix(e.Name(), ".csv")) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, domain.Errorf(domain.EINVALID, "--usage: %s holds no .csv or .csv.gz files: want the directory of a Bitbrains trace (one file per VM)", dir)
	}
	slices.SortFunc(names, usage.CompareTraceNames)
	paths := make([]string, len(names))
	byVM := map[string]string{}
	for i, n := range names {
		if other, ok := byVM[usage.TraceName(n)]; ok {
			return nil, domain.Errorf(domain.EINVALID, "--usage: %s and %s are both VM %q: keep one of them", filepath.Join(dir, other), filepath.Join(dir, n), usage.TraceName(n))
		}
		byVM[usage.TraceName(n)] = n
		paths[i] = filepath.Join(dir, n)
	}
	return paths, nil
}

// readAll reads files with up to workers goroutines, keeping their order.
func readAll(ctx context.Context, paths []string, workers int) ([]rawSeries, error) {
	out := make([]rawSeries, len(paths))
	errs := make([]error, len(paths))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(workers, len(paths))) {
		wg.Go(func() {
			for i := range jobs {
				out[i], errs[i] = readSeries(paths[i])
			}
		})
	}
feed:
	for i := range paths {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var problems []domain.Problem
	for _, err := range errs {
		if err != nil {
			problems = append(problems, domain.Problem{Message: domain.ErrorMessage(err)})
		}
	}
	if len(problems) > 0 {
		return nil, domain.Invalid(fmt.Sprintf("--usage: %d of %d trace files cannot be read", len(problems), len(paths)), problems)
	}
	return out, nil
}

// readSeries reads one Bitbrains file. Malformed rows are counted, not
// fatal; a file that is not a Bitbrains CSV, or cannot be read to its end,
// is an error naming it.
func readSeries(path string) (rawSeries, error) {
	s := rawSeries{name: usage.TraceName(path), path: path}
	f, err := os.Open(path)
	if err != nil {
		return s, domain.Errorf(domain.EINVALID, "%s", pathError(err))
	}
	defer f.Close()
	r, err := usage.NewBitbrainsReader(path, f)
	if err != nil {
		return s, err
	}
	for r.Next() {
		x := r.Sample()
		s.samples = append(s.samples, rawSample{
			unix: x.Time.Unix(),
			cpu:  float64(x.CPUMillicores), cpuCap: float64(x.CPUCapacityMillicores),
			memory: float64(x.MemoryBytes), memCap: float64(x.MemoryCapacityBytes),
		})
	}
	if err := r.Err(); err != nil {
		return s, err
	}
	s.stats = r.Stats()
	return s, nil
}

// pathError drops Go's "open " prefix from file errors.
func pathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + strings.TrimPrefix(pe.Err.Error(), "open ")
	}
	return err.Error()
}
