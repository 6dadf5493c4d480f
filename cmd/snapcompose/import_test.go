package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/store"
	"github.com/snapcompose/snapcompose/internal/usage/usagetest"
)

const traceSlice = "../../data/bitbrains-rnd-2013-7"

const bitbrainsHeader = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\t" +
	"Memory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\t" +
	"Disk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n"

// runWith runs the program in-process with DATABASE_URL set to dbURL ("" for
// unset), as a user would from a shell.
func runWith(t testing.TB, dbURL string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(key string) string {
		if key == "DATABASE_URL" {
			return dbURL
		}
		return ""
	}}
	code = m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// samplesPerService returns how many samples each service of host has.
func samplesPerService(t testing.TB, pool *pgxpool.Pool, host string) map[string]int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT s.service, count(u.ts) FROM usage_series s LEFT JOIN usage_samples u ON u.series_id = s.id
		WHERE s.host = $1 GROUP BY s.service`, host)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var svc string
		var n int64
		if err := rows.Scan(&svc, &n); err != nil {
			t.Fatal(err)
		}
		got[svc] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func wantFragments(t *testing.T, what, text string, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if !strings.Contains(text, f) {
			t.Errorf("%s does not mention %q:\n%s", what, f, text)
		}
	}
}

func TestImportUsageTraceSlice(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	want := map[string]int64{}
	var total int64
	for _, vm := range []string{"1", "14", "82"} {
		want[vm], _, _ = usagetest.TraceRows(t, filepath.Join(traceSlice, vm+".csv.gz"))
		total += want[vm]
	}

	code, stdout, stderr := runWith(t, dbURL, "import", "usage", "--format", "bitbrains", traceSlice)
	if code != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stdout", stdout, `imported 3 files into host "bitbrains-rnd"`,
		fmt.Sprintf("%s rows inserted", thousands(total)), "0 rows skipped: already stored", "0 malformed rows skipped")
	// stderr is not a terminal here: one plain line per file as it is
	// done, without control characters.
	wantFragments(t, "stderr", stderr, "[3/3] ", "../../data/bitbrains-rnd-2013-7/1.csv.gz: 8,260 rows (8,260 new)",
		"/14.csv.gz: 428 rows", "/82.csv.gz: 2,073 rows", "rows/s")
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Errorf("stderr holds control characters although it is not a terminal: %q", stderr)
	}
	if got := samplesPerService(t, pool, "bitbrains-rnd"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("samples per service = %v, want %v (the data rows of each file)", got, want)
	}

	// Again: nothing new, nothing changed.
	code, stdout, stderr = runWith(t, dbURL, "import", "usage", "--format", "bitbrains", traceSlice)
	if code != 0 {
		t.Fatalf("second import: exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stdout of the second import", stdout, "0 rows inserted", fmt.Sprintf("%s rows skipped: already stored", thousands(total)))
	if got := samplesPerService(t, pool, "bitbrains-rnd"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after a second import, samples per service = %v, want %v", got, want)
	}

	// Flags may follow the paths; a file may be named directly.
	code, _, stderr = runWith(t, dbURL, "import", "usage", filepath.Join(traceSlice, "14.csv.gz"), "--host", "other", "--format", "bitbrains")
	if code != 0 {
		t.Fatalf("import with flags after the path: exit code %d; stderr:\n%s", code, stderr)
	}
	if got := samplesPerService(t, pool, "other"); got["14"] != want["14"] || len(got) != 1 {
		t.Errorf("samples on host other = %v, want only service 14 with %d", got, want["14"])
	}
}

// writeTrace writes a Bitbrains file of the given data rows, gzip'd when
// the name ends in .gz, and returns its path.
func writeTrace(t *testing.T, dir, name string, rows ...string) string {
	t.Helper()
	data := []byte(bitbrainsHeader + strings.Join(rows, ""))
	if strings.HasSuffix(name, ".gz") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func traceRow(ts int64, percent float64) string {
	return fmt.Sprintf("%d;\t2;\t5199.99;\t%g;\t%g;\t4194304.0;\t1048576.0;\t1.5;\t2.25;\t3.0;\t0.5\n", ts, percent*51.9999, percent)
}

func TestImportUsageMalformedRows(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	const t0 = 1372629804
	var rows []string
	for i := range 30 {
		rows = append(rows, traceRow(t0+int64(i)*300, float64(i)))
	}
	rows[4] = "1372631004;\t2;\tlots;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t0\n" // line 6
	rows[9] = "1372632504;\t2;\t5199.99\n"                              // line 11
	rows[20] = traceRow(t0, 99)                                         // line 22, duplicates line 2
	writeTrace(t, dir, "7.csv.gz", rows...)
	writeTrace(t, dir, "8.csv", traceRow(t0, 1), traceRow(t0+300, 2))

	code, stdout, stderr := runWith(t, dbURL, "import", "usage", "--format", "bitbrains", dir)
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (malformed rows skipped, the rest imported); stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stderr", stderr,
		"3 malformed rows were skipped; every other row was imported",
		"7.csv.gz:6: CPU capacity provisioned [MHZ]: \"lots\" is not a number",
		"7.csv.gz:11: has 3 fields, want 11",
		"7.csv.gz:22: duplicate timestamp 1372629804 with different values (first at line 2, which is kept)")
	wantFragments(t, "stdout", stdout, "imported 2 files", "29 rows inserted", "3 malformed rows skipped")
	if got := samplesPerService(t, pool, "bitbrains-rnd"); got["7"] != 27 || got["8"] != 2 {
		t.Errorf("samples per service = %v, want 27 good rows of 7 and both of 8", got)
	}
}

func TestImportUsageBadFilesKeepTheGoodOnes(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	good := writeTrace(t, dir, "5.csv", traceRow(1372629804, 1), traceRow(1372630104, 2))
	notBitbrains := filepath.Join(dir, "pods.csv")
	os.WriteFile(notBitbrains, []byte("name,cpu_milli,memory_mib\nx,1,2\n"), 0o644)
	fakeGzip := filepath.Join(dir, "6.csv.gz")
	os.WriteFile(fakeGzip, []byte(bitbrainsHeader), 0o644)
	var many []string
	for i := range 3000 {
		many = append(many, traceRow(1372629804+int64(i)*300, float64(i%100)))
	}
	truncated := writeTrace(t, dir, "9.csv.gz", many...)
	data, _ := os.ReadFile(truncated)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	missing := filepath.Join(dir, "nope.csv.gz")

	code, stdout, stderr := runWith(t, dbURL, "import", "usage", "--format", "bitbrains", good, notBitbrains, fakeGzip, truncated, missing)
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stderr", stderr, "4 files or directories could not be imported (every other file was)",
		missing+": no such file or directory",
		notBitbrains+": not a Bitbrains CSV: line 1 is \"name,cpu_milli,memory_mib\"",
		fakeGzip+": not gzip-compressed, although its name ends in .gz",
		truncated+": truncated or corrupt gzip data after line")
	wantFragments(t, "stdout", stdout, "of 4 files")
	got := samplesPerService(t, pool, "bitbrains-rnd")
	if got["5"] != 2 {
		t.Errorf("samples of the good file = %d, want 2", got["5"])
	}
	// The rows before the cut of the truncated file are kept.
	if n := got["9"]; n == 0 || n >= 3000 {
		t.Errorf("samples of the truncated file = %d, want the rows before the cut", n)
	}
	if _, ok := got["pods"]; ok {
		t.Errorf("a series was created for a file that is not a Bitbrains CSV")
	}
}

func TestImportUsageArgumentErrors(t *testing.T) {
	t.Parallel()
	emptyDir := t.TempDir()
	otherDir := t.TempDir()
	writeTrace(t, otherDir, "1.csv", traceRow(1372629804, 1))
	const url = "postgres://nobody@127.0.0.1:1/none" // never reached
	tests := []struct {
		name    string
		dbURL   string
		args    []string
		wantErr []string
	}{
		{"no kind", url, []string{"import"}, []string{"import: want `snapcompose import usage --format bitbrains"}},
		{"unknown kind", url, []string{"import", "outcomes"}, []string{"import usage"}},
		{"no format", url, []string{"import", "usage", traceSlice}, []string{"--format is required: want bitbrains"}},
		{"unknown format", url, []string{"import", "usage", "--format", "prometheus", traceSlice}, []string{"--format", `"prometheus"`, "want bitbrains"}},
		{"no paths", url, []string{"import", "usage", "--format", "bitbrains"}, []string{"name at least one file or directory"}},
		{"empty host", url, []string{"import", "usage", "--format", "bitbrains", "--host", " ", traceSlice}, []string{"--host: must not be empty"}},
		{"no workers", url, []string{"import", "usage", "--format", "bitbrains", "--workers", "0", traceSlice}, []string{"--workers: want 1 to 64, got 0"}},
		{"unknown flag", url, []string{"import", "usage", "--format", "bitbrains", "--fast", traceSlice}, []string{"import usage", "fast"}},
		{"no database", "", []string{"import", "usage", "--format", "bitbrains", traceSlice}, []string{"DATABASE_URL is not set"}},
		{"nothing there", url, []string{"import", "usage", "--format", "bitbrains", emptyDir, filepath.Join(emptyDir, "x.csv")},
			[]string{"nothing to import", emptyDir + ": no .csv or .csv.gz files in this directory", "x.csv: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runWith(t, tt.dbURL, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			wantFragments(t, "stderr", stderr, tt.wantErr...)
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestImportUsageSameSeriesTwice(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	writeTrace(t, dir, "1.csv", traceRow(1372629804, 1))
	code, _, stderr := runWith(t, dbURL, "import", "usage", "--format", "bitbrains", filepath.Join(traceSlice, "1.csv.gz"), filepath.Join(dir, "1.csv"))
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stderr", stderr, filepath.Join(dir, "1.csv")+": would write the same series as ../../data/bitbrains-rnd-2013-7/1.csv.gz (service \"1\")")
	if got := samplesPerService(t, pool, "bitbrains-rnd"); got["1"] != 8260 {
		t.Errorf("samples of service 1 = %d, want the 8,260 of the first file only", got["1"])
	}
}

func TestImportUsageNeedsAMigratedDatabase(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	g, err := store.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.DownAll(); err != nil {
		t.Fatal(err)
	}
	g.Close()
	code, _, stderr := runWith(t, dbURL, "import", "usage", "--format", "bitbrains", traceSlice)
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	wantFragments(t, "stderr", stderr, "migrate up")
}

// BenchmarkImportBitbrains imports the whole Bitbrains Rnd trace (120 VMs,
// about a million rows) into a fresh database with `snapcompose import
// usage`, and reports rows/s and the size of the resulting tables. The trace
// comes from SNAPCOMPOSE_BITBRAINS_DIR, else ../shared/data next to the
// repository.
func BenchmarkImportBitbrains(b *testing.B) {
	dir := os.Getenv("SNAPCOMPOSE_BITBRAINS_DIR")
	if dir == "" {
		dir = "../../../shared/data/bitbrains-rnd-2013-7"
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv.gz"))
	if len(files) == 0 {
		b.Skipf("no Bitbrains trace in %s: set SNAPCOMPOSE_BITBRAINS_DIR", dir)
	}
	ctx := context.Background()
	var rows int64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pool, dbURL := pgtest.NewDatabase(b)
		m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(key string) string {
			if key == "DATABASE_URL" {
				return dbURL
			}
			return ""
		}}
		b.StartTimer()
		start := time.Now()
		// The trace has a few malformed rows (conflicting duplicate
		// timestamps in VMs 20 and 54), so 1 is a success here.
		code := m.Run(ctx, []string{"import", "usage", "--format", "bitbrains", dir})
		elapsed += time.Since(start)
		b.StopTimer()
		if code > 1 {
			_, _, stderr := runWith(b, dbURL, "import", "usage", "--format", "bitbrains", dir)
			b.Fatalf("import exited %d: %s", code, stderr)
		}
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM usage_samples").Scan(&n); err != nil {
			b.Fatal(err)
		}
		rows += n
		if i == b.N-1 {
			logTableSizes(b, pool, len(files), n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}

func logTableSizes(b *testing.B, pool *pgxpool.Pool, files int, samples int64) {
	b.Helper()
	for _, table := range []string{"usage_samples", "usage_series"} {
		var total, heap, indexes int64
		err := pool.QueryRow(context.Background(), `
			SELECT pg_total_relation_size($1::regclass), pg_relation_size($1::regclass), pg_indexes_size($1::regclass)`,
			table).Scan(&total, &heap, &indexes)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: %s total (table %s, indexes %s)", table, mib(total), mib(heap), mib(indexes))
	}
	b.Logf("%d files, %s samples", files, thousands(samples))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func TestListTraceFilesNaturalOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"10.csv", "2.csv", "1.csv.gz", "a.csv", "notes.txt", "100.csv.gz"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	os.Mkdir(filepath.Join(dir, "3.csv"), 0o755) // a directory is not a file to import
	files, problems := listTraceFiles([]string{dir})
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f.path)+"="+f.service)
	}
	if want := "[1.csv.gz=1 2.csv=2 10.csv=10 100.csv.gz=100 a.csv=a]"; fmt.Sprint(got) != want || len(problems) != 0 {
		t.Errorf("files = %v, problems %v; want %s", got, problems, want)
	}
}

func TestProgressOnATerminal(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := newProgress(&b, true, 4)
	p.addRows(12345)
	p.fileDone(traceFile{path: "1.csv.gz", service: "1"}, fileResult{started: true, inserted: 12345})
	p.finish()
	out := b.String()
	last := out[strings.LastIndex(out, "\r"):] // the ticker may have drawn before
	if !strings.HasPrefix(last, "\rimporting [#######.......................] 1/4 files, 12,345 rows, ") || !strings.HasSuffix(last, " rows/s\n") {
		t.Errorf("progress = %q, want a bar redrawn after a carriage return, ended by a newline", out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("progress = %q holds escape sequences", out)
	}
}
