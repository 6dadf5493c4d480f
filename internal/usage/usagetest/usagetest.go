// Package usagetest reads trace files for tests the plain way, without the
// parser under test, so counts can be checked against it.
package usagetest

import (
	"bufio"
	"compress/gzip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TraceRows counts the non-blank data rows of a gzip'd Bitbrains file and
// finds their time range.
func TraceRows(t testing.TB, path string) (n int64, first, last time.Time) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Scan() // header
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		field, _, _ := strings.Cut(sc.Text(), ";")
		sec, err := strconv.ParseInt(strings.TrimSpace(field), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		at := time.Unix(sec, 0).UTC()
		if n == 0 || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n, first, last
}
