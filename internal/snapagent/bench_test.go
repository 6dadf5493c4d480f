package snapagent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

// BenchmarkCapture captures a generated tree of SNAPAGENT_BENCH_FILES
// files (default 10,000) of about SNAPAGENT_BENCH_FILE_BYTES bytes each
// (default 10 KiB, sizes spread ±50%), 100 to a directory, and reports
// files/s and MB/s for a first capture (every file hashed) and a re-capture
// (digests reused). SNAPAGENT_BENCH_DIR keeps the tree between runs;
// SNAPAGENT_BENCH_DROP_CACHES=1 drops the page cache before each first
// capture (root only), for cold-disk figures. The figures cover the whole
// request but the CPU-measurement window, which a capture of a small tree
// would otherwise wait out.
func BenchmarkCapture(b *testing.B) {
	files := envInt(b, "SNAPAGENT_BENCH_FILES", 10_000)
	fileBytes := envInt(b, "SNAPAGENT_BENCH_FILE_BYTES", 10<<10)
	dir := os.Getenv("SNAPAGENT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	root := filepath.Join(dir, fmt.Sprintf("tree-%d-%d", files, fileBytes))
	totalBytes := generateTree(b, root, files, fileBytes)
	b.Logf("tree: %d files, %.1f MB in %s", files, float64(totalBytes)/1e6, root)

	newAgent := func() *Agent {
		a, err := New(Config{Roots: []string{root}, Token: testToken, MaxFiles: files + 1})
		if err != nil {
			b.Fatal(err)
		}
		a.cpuWindow = 0
		return a
	}
	report := func(b *testing.B, stats agentapi.CaptureStats) {
		secs := b.Elapsed().Seconds()
		b.ReportMetric(float64(stats.Files)*float64(b.N)/secs, "files/s")
		b.ReportMetric(float64(stats.Bytes)*float64(b.N)/secs/1e6, "MB/s")
		b.ReportMetric(float64(stats.ReusedDigests)/float64(max(stats.Files, 1)), "reused/file")
	}

	b.Run("first", func(b *testing.B) {
		var stats agentapi.CaptureStats
		for b.Loop() {
			b.StopTimer()
			a := newAgent()
			if os.Getenv("SNAPAGENT_BENCH_DROP_CACHES") == "1" {
				dropCaches(b)
			}
			b.StartTimer()
			stats = benchCapture(b, a, root)
		}
		if stats.Files != files || stats.ReusedDigests != 0 {
			b.Fatalf("stats = %+v", stats)
		}
		report(b, stats)
	})
	b.Run("recapture", func(b *testing.B) {
		a := newAgent()
		benchCapture(b, a, root)
		var stats agentapi.CaptureStats
		for b.Loop() {
			stats = benchCapture(b, a, root)
		}
		if stats.Files != files || stats.ReusedDigests != files {
			b.Fatalf("stats = %+v", stats)
		}
		report(b, stats)
	})
}

// benchCapture runs one capture through the handler, discarding the body
// but its stats.
func benchCapture(b *testing.B, a *Agent, root string) agentapi.CaptureStats {
	req := httptest.NewRequest(http.MethodPost, "/v1/capture", bytes.NewReader(captureBody(root)))
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := &tailWriter{header: http.Header{}}
	a.Handler().ServeHTTP(w, req)
	if w.status != http.StatusOK || w.header.Get(trailerError) != "" {
		b.Fatalf("capture: status %d, %s: %s", w.status, w.header.Get(trailerError), w.tail)
	}
	i := bytes.LastIndex(w.tail, []byte(`"stats":`))
	if i < 0 {
		b.Fatalf("no stats at the end of the capture: %s", w.tail)
	}
	var stats agentapi.CaptureStats
	if err := json.Unmarshal(bytes.TrimSuffix(bytes.TrimSpace(w.tail[i+len(`"stats":`):]), []byte("}")), &stats); err != nil {
		b.Fatalf("decoding stats: %v: %s", err, w.tail[i:])
	}
	return stats
}

// tailWriter is a ResponseWriter that keeps only the end of the body.
type tailWriter struct {
	header http.Header
	status int
	tail   []byte
}

func (w *tailWriter) Header() http.Header { return w.header }
func (w *tailWriter) WriteHeader(s int)   { w.status = s }
func (w *tailWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.tail = append(w.tail, p...)
	if len(w.tail) > 64<<10 {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-8<<10:]...)
	}
	return len(p), nil
}

// generateTree writes files of random bytes under root, unless a previous
// run finished writing the same tree there, and returns their total size.
func generateTree(b *testing.B, root string, files, fileBytes int) int64 {
	marker := filepath.Join(root, ".complete")
	rng := rand.New(rand.NewPCG(uint64(files), uint64(fileBytes)))
	sizes := make([]int, files)
	var total int64
	for i := range sizes {
		sizes[i] = fileBytes/2 + rng.IntN(fileBytes+1)
		total += int64(sizes[i])
	}
	if _, err := os.Stat(marker); err == nil {
		return total
	}
	buf := make([]byte, 2*fileBytes+1)
	chacha := rand.NewChaCha8([32]byte{1})
	for i, size := range sizes {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/10_000), fmt.Sprintf("d%03d", i/100%100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		chacha.Read(buf[:size])
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.dat", i)), buf[:size], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// Digests of files changed within the last second are not reused.
	time.Sleep(1100 * time.Millisecond)
	// The marker is not a regular file of the tree's count: a directory.
	if err := os.Mkdir(marker, 0o755); err != nil {
		b.Fatal(err)
	}
	return total
}

func dropCaches(b *testing.B) {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Fatalf("dropping the page cache: %v", err)
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}
