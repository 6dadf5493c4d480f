package usage_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/usage"
	"github.com/snapcompose/snapcompose/internal/usage/usagetest"
)

const header = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\t" +
	"Memory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\t" +
	"Disk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n"

// row returns a well-formed data row at epoch second ts with the given CPU
// usage percentage on 2 cores of 2,600 MHz and 4 GiB of memory.
func row(ts int64, percent float64) string {
	return fmt.Sprintf("%d;\t2;\t5199.99;\t%g;\t%g;\t4194304.0;\t1048576.0;\t1.5;\t2.25;\t3.0;\t0.5\n", ts, percent*51.9999, percent)
}

const t0 = 1372629804 // 2013-06-30T22:03:24Z, the trace's first timestamp

// read reads every good sample of data, failing the test on a file error.
func read(t *testing.T, name string, data []byte) ([]usage.Sample, usage.Stats, error) {
	t.Helper()
	r, err := usage.NewBitbrainsReader(name, bytes.NewReader(data))
	if err != nil {
		return nil, usage.Stats{}, err
	}
	var got []usage.Sample
	for s := range r.All() {
		got = append(got, s)
	}
	return got, r.Stats(), r.Err()
}

func gzipped(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := io.WriteString(zw, s); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestBitbrainsSampleConversion(t *testing.T) {
	t.Parallel()
	data := header + "1372629804;\t4;\t10399.99;\t2599.99;\t25.0;\t8388608.0;\t2097152.5;\t0.5;\t6.0;\t1000.25;\t147.5\n"
	got, stats, err := read(t, "vm.csv", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := usage.Sample{
		Time:                  time.Date(2013, 6, 30, 22, 3, 24, 0, time.UTC),
		CPUMillicores:         1000, // 25% of 4 cores
		CPUCapacityMillicores: 4000,
		MemoryBytes:           2147484160, // 2,097,152.5 KB
		MemoryCapacityBytes:   8 << 30,
		DiskReadKBps:          0.5,
		DiskWriteKBps:         6,
		NetRxKBps:             1000.25,
		NetTxKBps:             147.5,
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("samples = %+v\nwant [%+v]", got, want)
	}
	if stats.Rows != 1 || stats.Malformed != 0 {
		t.Errorf("stats = %+v, want 1 row, nothing malformed", stats)
	}
}

func TestBitbrainsClampsCPUAboveCapacity(t *testing.T) {
	t.Parallel()
	got, stats, err := read(t, "vm.csv", []byte(header+row(t0, 106.4)+row(t0+300, 50)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].CPUMillicores != 2000 || got[0].CPUCapacityMillicores != 2000 || got[1].CPUMillicores != 1000 {
		t.Errorf("samples = %+v, want 106.4%% clamped to the 2,000 millicore capacity, then 1,000", got)
	}
	if stats.Clamped != 1 || stats.Malformed != 0 {
		t.Errorf("stats = %+v, want 1 clamped, nothing malformed", stats)
	}
}

// TestBitbrainsMalformedRows checks that each kind of malformed row is
// reported as FILE:LINE: message while every good row is still read.
func TestBitbrainsMalformedRows(t *testing.T) {
	t.Parallel()
	good := row(t0, 10)
	tests := []struct {
		name      string
		rows      string // after the header, which is line 1
		wantRows  int
		wantLine  int
		wantMsg   string
		wantCount int // malformed rows; 1 when zero
	}{
		{"too few fields", good + "1372630104;\t2;\t5199.99\n" + row(t0+600, 1), 2, 3, `has 3 fields, want 11 separated by ";"`, 1},
		{"too many fields", good + strings.TrimSuffix(row(t0+300, 1), "\n") + ";\t7\n", 1, 3, "has 12 fields, want 11", 1},
		{"tab separated only", good + strings.ReplaceAll(row(t0+300, 1), ";", ""), 1, 3, "has 1 field, want 11", 1},
		{"timestamp not a number", "abc" + good[10:], 0, 2, `Timestamp [ms]: "abc" is not an integer`, 1},
		{"fractional timestamp", "1372629804.5" + good[10:], 0, 2, `Timestamp [ms]: "1372629804.5" is not an integer`, 1},
		{"timestamp in milliseconds", "1372629804000" + good[10:], 0, 2, `Timestamp [ms]: "1372629804000" is out of range: want epoch seconds in the years 2000 to 2099`, 1},
		{"timestamp before 2000", "946684799" + good[10:], 0, 2, "is out of range", 1},
		{"timestamp overflows", "99999999999999999999" + good[10:], 0, 2, "is out of range", 1},
		{"negative timestamp", "-1372629804" + good[10:], 0, 2, "is out of range", 1},
		{"cores not a number", good + "1372630104;\ttwo;\t5199.99;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t0\n", 1, 3, `CPU cores: "two" is not a number`, 1},
		{"empty field", good + "1372630104;\t2;\t5199.99;\t0;\t;\t0;\t0;\t0;\t0;\t0;\t0\n", 1, 3, `CPU usage [%]: "" is not a number`, 1},
		{"negative memory", good + "1372630104;\t2;\t5199.99;\t0;\t0;\t0;\t-5;\t0;\t0;\t0;\t0\n", 1, 3, `Memory usage [KB]: "-5" is negative`, 1},
		{"NaN throughput", good + "1372630104;\t2;\t5199.99;\t0;\t0;\t0;\t0;\tNaN;\t0;\t0;\t0\n", 1, 3, `Disk read throughput [KB/s]: "NaN" is not a finite number`, 1},
		{"infinite throughput", good + "1372630104;\t2;\t5199.99;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t+Inf\n", 1, 3, `Network transmitted throughput [KB/s]: "+Inf" is not a finite number`, 1},
		{"overflowing number", good + "1372630104;\t2;\t5199.99;\t0;\t0;\t0;\t1e400;\t0;\t0;\t0;\t0\n", 1, 3, `Memory usage [KB]: "1e400" is not a finite number`, 1},
		{"huge number", good + "1372630104;\t2;\t5199.99;\t0;\t0;\t1e300;\t0;\t0;\t0;\t0;\t0\n", 1, 3, `Memory capacity provisioned [KB]: "1e300" is too large`, 1},
		{"duplicate timestamp with other values", good + row(t0+300, 2) + row(t0, 99), 2, 4, "duplicate timestamp 1372629804 with different values (first at line 2, which is kept)", 1},
		{"errors keep their own lines", good + "x\n\n" + row(t0+300, 1) + "y\n", 2, 3, `has 1 field, want 11`, 2},
		{"overlong line", good + strings.Repeat("9", 70000) + "\n" + row(t0+300, 1), 2, 3, "line is longer than 65536 bytes", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, stats, err := read(t, "vm/7.csv", []byte(header+tt.rows))
			if err != nil {
				t.Fatalf("file error %v, want only row errors", err)
			}
			if len(got) != tt.wantRows || stats.Rows != tt.wantRows {
				t.Errorf("read %d good rows (stats %d), want %d", len(got), stats.Rows, tt.wantRows)
			}
			if stats.Malformed != tt.wantCount || len(stats.Problems) != tt.wantCount {
				t.Fatalf("malformed = %d, listed %v; want %d", stats.Malformed, stats.Problems, tt.wantCount)
			}
			p := stats.Problems[0]
			prefix := fmt.Sprintf("vm/7.csv:%d: ", tt.wantLine)
			if !strings.HasPrefix(p.Error(), prefix) || !strings.Contains(p.Message, tt.wantMsg) {
				t.Errorf("problem = %q, want %q followed by %q", p.Error(), prefix, tt.wantMsg)
			}
		})
	}
}

func TestBitbrainsRepeatedRowsAreSkippedQuietly(t *testing.T) {
	t.Parallel()
	// Files 20 and 54 of the trace repeat whole stretches of rows verbatim.
	data := header + row(t0, 1) + row(t0+300, 2) + row(t0, 1) + row(t0+300, 2) + row(t0+600, 3)
	got, stats, err := read(t, "20.csv", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || stats.Repeated != 2 || stats.Malformed != 0 {
		t.Errorf("got %d samples, stats %+v; want 3 samples, 2 repeated, nothing malformed", len(got), stats)
	}
}

func TestBitbrainsListsABoundedNumberOfProblems(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(header)
	for i := range 250 {
		b.WriteString(row(t0+int64(i)*300, 1))
		b.WriteString("garbage\n")
	}
	got, stats, err := read(t, "vm.csv", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 || stats.Malformed != 250 || len(stats.Problems) != usage.MaxListedProblems {
		t.Errorf("got %d samples, %d malformed, %d listed; want 250, 250, %d", len(got), stats.Malformed, len(stats.Problems), usage.MaxListedProblems)
	}
	if last := stats.Problems[len(stats.Problems)-1]; last.Line != 2*usage.MaxListedProblems+1 {
		t.Errorf("last listed problem at line %d, want %d", last.Line, 2*usage.MaxListedProblems+1)
	}
}

func TestBitbrainsLineEndingsAndWhitespace(t *testing.T) {
	t.Parallel()
	crlf := strings.ReplaceAll(header+row(t0, 1)+row(t0+300, 2), "\n", "\r\n")
	noFinalNewline := strings.TrimSuffix(header+row(t0, 1)+row(t0+300, 2), "\n")
	bom := "\ufeff" + header + row(t0, 1) + row(t0+300, 2)
	spaces := strings.ReplaceAll(header+row(t0, 1)+row(t0+300, 2), ";\t", " ; ")
	for name, data := range map[string]string{"crlf": crlf, "no final newline": noFinalNewline, "bom": bom, "spaces": spaces} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, stats, err := read(t, "vm.csv", []byte(data))
			if err != nil || len(got) != 2 || stats.Malformed != 0 {
				t.Errorf("got %d samples, stats %+v, err %v; want 2, none malformed", len(got), stats, err)
			}
		})
	}
}

// TestBitbrainsFileErrors checks files that are not Bitbrains CSVs at all:
// the error names the file and says what is wrong.
func TestBitbrainsFileErrors(t *testing.T) {
	t.Parallel()
	truncated := gzipped(t, header+row(t0, 1)+row(t0+300, 1)+row(t0+600, 1))
	truncated = truncated[:len(truncated)-12]
	tests := []struct {
		name string
		file string
		data []byte
		want string
	}{
		{"empty", "vm.csv", nil, "vm.csv: empty file"},
		{"wrong header", "vm.csv", []byte("name,cpu_milli,memory_mib\nx,1,2\n"), `vm.csv: not a Bitbrains CSV: line 1 is "name,cpu_milli,memory_mib", want the header "Timestamp [ms];`},
		{"header only a prefix", "vm.csv", []byte("Timestamp [ms];\tCPU cores\n"), "vm.csv: not a Bitbrains CSV"},
		{"data without header", "vm.csv", []byte(row(t0, 1)), "vm.csv: not a Bitbrains CSV: line 1 is \"1372629804;"},
		{"binary", "vm.csv", []byte("\x89PNG\r\n\x1a\n\x00\x00"), "vm.csv: not a Bitbrains CSV"},
		{"named .gz but plain", "vm.csv.gz", []byte(header + row(t0, 1)), "vm.csv.gz: not gzip-compressed, although its name ends in .gz"},
		{"gzip header cut", "vm.csv.gz", []byte{0x1f, 0x8b, 8}, "vm.csv.gz: corrupt gzip data"},
		{"gzip'd garbage", "vm.csv.gz", gzipped(t, "hello\n"), `vm.csv.gz: not a Bitbrains CSV: line 1 is "hello"`},
		{"truncated gzip", "vm.csv.gz", truncated, "vm.csv.gz: truncated or corrupt gzip data after line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := read(t, tt.file, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Errorf("error code = %q, want %q", code, domain.EINVALID)
			}
		})
	}
}

// TestBitbrainsTruncatedGzipKeepsEarlierRows checks that rows before the
// cut are still read: the store imports them and reports the error.
func TestBitbrainsTruncatedGzipKeepsEarlierRows(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(header)
	for i := range 5000 {
		b.WriteString(row(t0+int64(i)*300, float64(i%100)))
	}
	data := gzipped(t, b.String())
	got, _, err := read(t, "vm.csv.gz", data[:len(data)/2])
	if err == nil || !strings.Contains(err.Error(), "truncated or corrupt gzip data") {
		t.Fatalf("error = %v, want truncated gzip data", err)
	}
	if len(got) == 0 || len(got) >= 5000 {
		t.Errorf("read %d rows before the cut, want some but not all", len(got))
	}
}

type failingReader struct{ data io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.data.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("input/output error")
	}
	return n, err
}

func TestBitbrainsReadErrorNamesTheFile(t *testing.T) {
	t.Parallel()
	r, err := usage.NewBitbrainsReader("disk/3.csv", failingReader{strings.NewReader(header + row(t0, 1) + row(t0+300, 1))})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Next() {
		n++
	}
	if err := r.Err(); err == nil || err.Error() != "disk/3.csv: cannot read after line 3: input/output error" {
		t.Errorf("error = %v, want the file, the last line and the cause", err)
	}
	if n != 2 {
		t.Errorf("read %d rows, want 2", n)
	}
}

func TestBitbrainsRealTraceSlice(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("../../data/bitbrains-rnd-2013-7/*.csv.gz")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no trace files in data/bitbrains-rnd-2013-7: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, stats, err := read(t, path, data)
			if err != nil {
				t.Fatal(err)
			}
			if want, _, _ := usagetest.TraceRows(t, path); int64(len(got)) != want || stats.Malformed != 0 || stats.Repeated != 0 {
				t.Errorf("read %d samples (stats %+v), want all %d data rows", len(got), stats, want)
			}
			for i, s := range got {
				if s.CPUMillicores > s.CPUCapacityMillicores || s.Time.Year() != 2013 {
					t.Fatalf("sample %d = %+v: usage above capacity or not in 2013", i, s)
				}
			}
		})
	}
}

func FuzzParseBitbrains(f *testing.F) {
	// The bad-input catalogue's usage files.
	catalogue, _ := filepath.Glob("../../testdata/bad/usage/*.csv")
	for _, file := range catalogue {
		if body, err := os.ReadFile(file); err == nil {
			f.Add(body)
		}
	}

	f.Add([]byte(header + row(t0, 10) + row(t0+300, 120)))
	f.Add([]byte(header + row(t0, 10) + row(t0, 11) + row(t0, 10)))
	f.Add([]byte(header + "1;\t2;\t3;\t4;\t5;\t6;\t7;\t8;\t9;\t10;\t11\n-0;\t-0;\t0x1p3;\t1e400;\tNaN;\tinf;\t1_0;\t;\t;\t;\t\n"))
	f.Add([]byte(header + "\r\n\r\n" + strings.Repeat(";", 20) + "\n"))
	f.Add(gzipped(f, header+row(t0, 50)))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte("Timestamp [ms]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := usage.NewBitbrainsReader("fuzz.csv", bytes.NewReader(data))
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(err.Error(), "fuzz.csv: ") {
				t.Fatalf("file error %q is not EINVALID naming the file", err)
			}
			return
		}
		seen := map[time.Time]bool{}
		for s := range r.All() {
			if seen[s.Time] {
				t.Fatalf("timestamp %v yielded twice", s.Time)
			}
			seen[s.Time] = true
			if s.CPUMillicores < 0 || s.CPUCapacityMillicores < 0 || s.MemoryBytes < 0 || s.MemoryCapacityBytes < 0 ||
				s.DiskReadKBps < 0 || s.DiskWriteKBps < 0 || s.NetRxKBps < 0 || s.NetTxKBps < 0 {
				t.Fatalf("negative value in %+v", s)
			}
			if s.CPUMillicores > s.CPUCapacityMillicores {
				t.Fatalf("usage above capacity in %+v", s)
			}
			if y := s.Time.Year(); y < 2000 || y >= 2100 {
				t.Fatalf("timestamp %v out of range", s.Time)
			}
		}
		stats := r.Stats()
		if stats.Rows != len(seen) || len(stats.Problems) > usage.MaxListedProblems || len(stats.Problems) > stats.Malformed {
			t.Fatalf("inconsistent stats %+v for %d samples", stats, len(seen))
		}
		for _, p := range stats.Problems {
			if !strings.HasPrefix(p.Error(), fmt.Sprintf("fuzz.csv:%d: ", p.Line)) || p.Line < 2 {
				t.Fatalf("problem %q does not locate its row", p.Error())
			}
		}
	})
}
