package usage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// The Bitbrains trace (GWA-T-12 "Rnd", Grid Workloads Archive, TU Delft;
// Shen, van Beek, Iosup, CCGrid 2015) holds one CSV file per VM, usually
// gzip'd, with a row every five minutes. Fields are separated by ";" and a
// tab. Its "Timestamp [ms]" column really holds epoch seconds.
//
// A row becomes a Sample as follows.
//
//   - CPU: used millicores = CPU usage [%] / 100 × CPU cores × 1000, and
//     capacity = cores × 1000. A millicore is a thousandth of a provisioned
//     core, the unit allocations use. In every row of the trace the
//     percentage equals usage [MHz] / capacity [MHz] × 100, where capacity
//     [MHz] is cores × the host's clock (2,600, 2,700 or 2,926 MHz), so the
//     MHz ratio would give the same number; the percentage needs neither the
//     clock nor a division by a capacity that is 0 for VMs that were off.
//     (Reading MHz as millicores at a nominal 1,000 MHz per core would
//     overstate usage 2.6–2.9 times and make VMs on faster hosts look bigger.)
//   - CPU usage above 100% (up to 106% in the trace, in about 5% of rows)
//     comes from turbo boost running cores above their nominal clock. A core
//     cannot be more than fully busy, so used is clamped to the capacity;
//     Stats.Clamped counts how often.
//   - Memory: bytes = KB × 1024, usage kept as measured even where it exceeds
//     the provisioned capacity (which is itself an average over the
//     interval, and moves when a VM is resized).
//   - Disk and network throughput stay in KB/s.
var bitbrainsColumns = [...]string{
	"Timestamp [ms]",
	"CPU cores",
	"CPU capacity provisioned [MHZ]",
	"CPU usage [MHZ]",
	"CPU usage [%]",
	"Memory capacity provisioned [KB]",
	"Memory usage [KB]",
	"Disk read throughput [KB/s]",
	"Disk write throughput [KB/s]",
	"Network received throughput [KB/s]",
	"Network transmitted throughput [KB/s]",
}

// Column positions in a Bitbrains row.
const (
	colTimestamp = iota
	colCores
	colCPUCapacityMHz
	colCPUUsageMHz
	colCPUUsagePercent
	colMemoryCapacityKB
	colMemoryUsageKB
	colDiskReadKBps
	colDiskWriteKBps
	colNetRxKBps
	colNetTxKBps
	bitbrainsFields
)

// BitbrainsInterval is the trace's sampling interval.
const BitbrainsInterval = 300 * time.Second

// Timestamps outside [2000, 2100) are rejected: the trace is from 2013, and
// a value beyond 2100 is almost certainly milliseconds.
var (
	minTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxTimestamp = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

const (
	// MaxListedProblems bounds how many malformed rows a reader lists; it
	// still counts every one.
	MaxListedProblems = 100
	// maxLine bounds a line, and so the memory a hostile file can take.
	maxLine = 64 << 10
	// maxInt64 is the largest float64 below math.MaxInt64 with margin, so
	// converted quantities always fit the int64 columns.
	maxInt64 = float64(1 << 62)
)

// RowError is a malformed row: the file, its line (1-based, the header is
// line 1) and what is wrong with it.
type RowError struct {
	File    string
	Line    int
	Message string
}

func (e RowError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message) }

// Stats counts what a reader did with a file's rows.
type Stats struct {
	Rows      int // good rows, yielded as samples
	Malformed int // rows rejected, see Problems
	// Repeated counts rows identical to an earlier row of the file with the
	// same timestamp (some trace files repeat whole stretches); they are
	// skipped without complaint, since they add nothing.
	Repeated int
	// Clamped counts CPU readings above 100% clamped to the capacity.
	Clamped int
	// Problems lists the first MaxListedProblems malformed rows.
	Problems []RowError
}

// BitbrainsReader reads one Bitbrains VM file, a row at a time. Use it like
// bufio.Scanner:
//
//	for r.Next() { use(r.Sample()) }
//	if err := r.Err(); err != nil { ... }
//
// Malformed rows do not stop it: each is counted and listed in Stats, and
// the good rows around it are still yielded. Err reports only what makes the
// rest of the file unreadable (truncated gzip data, an I/O error).
//
// Memory stays small whatever the file's size: it reads a line at a time
// (at most 64 KiB each) and keeps only, to detect duplicate timestamps, a
// map entry per distinct timestamp — under half a megabyte for a month of
// 5-minute rows.
type BitbrainsReader struct {
	name    string
	gzipped bool
	r       *bufio.Reader
	line    int
	sample  Sample
	err     error
	seen    map[int64]seenRow
	seed    maphash.Seed
	stats   Stats
	fields  [bitbrainsFields]string
}

// seenRow is where a timestamp first occurred, and a digest of its values.
type seenRow struct {
	line   int64
	digest uint64
}

// NewBitbrainsReader returns a reader of the Bitbrains CSV data r holds,
// gzip'd (recognised by its magic bytes) or plain. name identifies the file
// in messages. It reads the header and returns EINVALID, naming the file,
// when r is not a Bitbrains CSV: a wrong header, a name ending in .gz on
// data that is not gzip'd, corrupt gzip data.
func NewBitbrainsReader(name string, r io.Reader) (*BitbrainsReader, error) {
	br := bufio.NewReaderSize(r, maxLine)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, domain.Errorf(domain.EINVALID, "%s: cannot read: %v", name, err)
	}
	gzipped := len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	switch {
	case gzipped:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "%s: corrupt gzip data: %v", name, err)
		}
		br = bufio.NewReaderSize(gz, maxLine)
	case strings.HasSuffix(name, ".gz"):
		return nil, domain.Errorf(domain.EINVALID, "%s: not gzip-compressed, although its name ends in .gz", name)
	}
	rd := &BitbrainsReader{name: name, gzipped: gzipped, r: br, seen: map[int64]seenRow{}, seed: maphash.MakeSeed()}
	header, err := rd.readLine()
	switch {
	case errors.Is(err, io.EOF):
		return nil, domain.Errorf(domain.EINVALID, "%s: empty file: want a Bitbrains CSV, starting with its header", name)
	case errors.Is(err, errLineTooLong):
		return nil, domain.Errorf(domain.EINVALID, "%s: not a Bitbrains CSV: line 1 is longer than %d bytes", name, maxLine)
	case err != nil:
		return nil, err
	}
	header = strings.TrimPrefix(header, "\ufeff")
	if !rd.split(header) || rd.fields != bitbrainsColumns {
		return nil, domain.Errorf(domain.EINVALID, "%s: not a Bitbrains CSV: line 1 is %s, want the header %q",
			name, quoteShort(header), strings.Join(bitbrainsColumns[:], ";\t"))
	}
	return rd, nil
}

// Next advances to the next good row, skipping (and recording) malformed
// ones. It returns false at the end of the file or when the file cannot be
// read further; Err tells which.
func (r *BitbrainsReader) Next() bool {
	for r.err == nil {
		line, err := r.readLine()
		switch {
		case errors.Is(err, io.EOF):
			return false
		case errors.Is(err, errLineTooLong):
			r.problem("line is longer than %d bytes", maxLine)
			continue
		case err != nil:
			r.err = err
			return false
		}
		if strings.TrimSpace(line) == "" {
			continue // a blank line (typically the last) carries nothing
		}
		if r.parse(line) {
			r.stats.Rows++
			return true
		}
	}
	return false
}

// Sample returns the row Next advanced to.
func (r *BitbrainsReader) Sample() Sample { return r.sample }

// Err returns what stopped the reader before the end of the file, as an
// EINVALID error naming the file and the last line read; nil at the end.
func (r *BitbrainsReader) Err() error { return r.err }

// Stats returns the counts so far and the malformed rows listed.
func (r *BitbrainsReader) Stats() Stats {
	s := r.stats
	s.Problems = append([]RowError(nil), r.stats.Problems...)
	return s
}

// All yields the remaining good rows; check Err afterwards.
func (r *BitbrainsReader) All() iter.Seq[Sample] {
	return func(yield func(Sample) bool) {
		for r.Next() {
			if !yield(r.sample) {
				return
			}
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its line ending, io.EOF after the
// last, errLineTooLong (having skipped the line) for an overlong one, and an
// EINVALID error when the data cannot be read.
func (r *BitbrainsReader) readLine() (string, error) {
	b, err := r.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.line++
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = r.r.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", r.readError(err)
		}
		return "", errLineTooLong
	}
	if err != nil {
		if !errors.Is(err, io.EOF) {
			// A partial line before a read error is cut short: drop it.
			return "", r.readError(err)
		}
		if len(b) == 0 {
			return "", io.EOF
		}
	}
	r.line++
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return string(b), nil
}

func (r *BitbrainsReader) readError(err error) error {
	what := "cannot read"
	if r.gzipped {
		what = "truncated or corrupt gzip data"
	}
	return domain.Errorf(domain.EINVALID, "%s: %s after line %d: %v", r.name, what, r.line, err)
}

// split splits line into r.fields, trimming the whitespace around each, and
// reports whether it has exactly the Bitbrains number of fields.
func (r *BitbrainsReader) split(line string) bool {
	n := 0
	for field := range strings.SplitSeq(line, ";") {
		if n == bitbrainsFields {
			return false
		}
		r.fields[n] = strings.TrimSpace(field)
		n++
	}
	return n == bitbrainsFields
}

// parse turns a data row into r.sample and reports whether it is good,
// recording what is wrong otherwise.
func (r *BitbrainsReader) parse(line string) bool {
	if !r.split(line) {
		n := strings.Count(line, ";") + 1
		plural := "s"
		if n == 1 {
			plural = ""
		}
		r.problem("has %d field%s, want %d separated by \";\"", n, plural, bitbrainsFields)
		return false
	}
	ts, err := strconv.ParseInt(r.fields[colTimestamp], 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		r.problem("%s: %s is not an integer (epoch seconds)", bitbrainsColumns[colTimestamp], quoteShort(r.fields[colTimestamp]))
		return false
	}
	if err != nil || ts < minTimestamp || ts >= maxTimestamp {
		r.problem("%s: %s is out of range: want epoch seconds in the years 2000 to 2099", bitbrainsColumns[colTimestamp], quoteShort(r.fields[colTimestamp]))
		return false
	}
	var v [bitbrainsFields]float64
	for i := colCores; i < bitbrainsFields; i++ {
		f := r.fields[i]
		x, err := strconv.ParseFloat(f, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			r.problem("%s: %s is not a number", bitbrainsColumns[i], quoteShort(f))
			return false
		case math.IsNaN(x) || math.IsInf(x, 0):
			r.problem("%s: %s is not a finite number", bitbrainsColumns[i], quoteShort(f))
			return false
		case x < 0:
			r.problem("%s: %s is negative", bitbrainsColumns[i], quoteShort(f))
			return false
		case x > maxInt64/1024:
			r.problem("%s: %s is too large", bitbrainsColumns[i], quoteShort(f))
			return false
		}
		v[i] = x + 0 // -0 becomes 0
	}
	digest := maphash.String(r.seed, line[strings.IndexByte(line, ';'):])
	if first, ok := r.seen[ts]; ok {
		if first.digest != digest {
			r.problem("duplicate timestamp %d with different values (first at line %d, which is kept)", ts, first.line)
			return false
		}
		r.stats.Repeated++
		return false
	}
	percent := v[colCPUUsagePercent]
	if percent > 100 {
		r.stats.Clamped++
		percent = 100
	}
	r.seen[ts] = seenRow{line: int64(r.line), digest: digest}
	capacity := int64(math.Round(v[colCores] * 1000))
	r.sample = Sample{
		Time:                  time.Unix(ts, 0).UTC(),
		CPUMillicores:         min(int64(math.Round(percent/100*float64(capacity))), capacity),
		CPUCapacityMillicores: capacity,
		MemoryBytes:           int64(math.Round(v[colMemoryUsageKB] * 1024)),
		MemoryCapacityBytes:   int64(math.Round(v[colMemoryCapacityKB] * 1024)),
		DiskReadKBps:          v[colDiskReadKBps],
		DiskWriteKBps:         v[colDiskWriteKBps],
		NetRxKBps:             v[colNetRxKBps],
		NetTxKBps:             v[colNetTxKBps],
	}
	return true
}

// problem records that the current line is malformed.
func (r *BitbrainsReader) problem(format string, args ...any) {
	r.stats.Malformed++
	if len(r.stats.Problems) < MaxListedProblems {
		r.stats.Problems = append(r.stats.Problems, RowError{File: r.name, Line: r.line, Message: fmt.Sprintf(format, args...)})
	}
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const limit = 60
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}
