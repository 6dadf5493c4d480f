package quantity

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int64
	}{
		{"cores", "8 cores", 8000},
		{"cores without a space", "8cores", 8000},
		{"one core", "1 core", 1000},
		{"fractional cores", "2.5 cores", 2500},
		{"bare integer", "8", 8000},
		{"bare fraction", "2.5", 2500},
		{"millicores", "500m", 500},
		{"zero", "0", 0},
		{"zero millicores", "0m", 0},
		{"leading zeros", "08", 8000},
		{"three decimals", "1.001", 1001},
		{"fraction rounds up to a millicore", "0.0001", 1},
		{"fraction just above a millicore rounds up", "1.0011", 1002},
		{"fractional millicores round up", "0.5m", 1},
		{"fractional millicores above a whole", "2.01m", 3},
		{"trailing zeros", "2.500 cores", 2500},
		{"largest", "4611686018427387.903 cores", math.MaxInt64 / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCPU(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseCPU(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int64
	}{
		{"bytes", "512B", 512},
		{"KB", "2KB", 2e3},
		{"MB", "2MB", 2e6},
		{"GB", "32GB", 32e9},
		{"TB", "2TB", 2e12},
		{"PB", "2PB", 2e15},
		{"K", "2K", 2e3},
		{"M", "2M", 2e6},
		{"G read as GB", "500G", 500e9},
		{"T", "2T", 2e12},
		{"P", "2P", 2e15},
		{"KiB", "2KiB", 2 << 10},
		{"MiB", "512MiB", 512 << 20},
		{"GiB", "32GiB", 32 << 30},
		{"TiB", "2TiB", 2 << 40},
		{"PiB", "2PiB", 2 << 50},
		{"fraction", "1.5TB", 1.5e12},
		{"binary fraction", "1.5GiB", 3 << 29},
		{"space before the unit", "32 GB", 32e9},
		{"zero", "0GB", 0},
		{"fraction of a byte rounds up", "0.5B", 1},
		{"fraction rounds up to a byte", "1.0000000001GB", 1e9 + 1},
		{"binary fraction rounds up", "0.3KiB", 308}, // 307.2
		{"largest", "4611686018427387903B", math.MaxInt64 / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseBytes(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseBytes(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		parse func(string) (int64, error)
		in    string
		want  string // a fragment of the error
	}{
		{"cpu word", ParseCPU, "eight", `invalid quantity "eight": want a number of cores such as "8 cores"`},
		{"cpu capitalised unit", ParseCPU, "8 Cores", `invalid quantity "8 Cores"`},
		{"cpu empty", ParseCPU, "", `invalid quantity ""`},
		{"cpu negative", ParseCPU, "-1", `invalid quantity "-1"`},
		{"cpu exponent", ParseCPU, "1e3", `invalid quantity "1e3"`},
		{"cpu leading dot", ParseCPU, ".5", `invalid quantity ".5"`},
		{"cpu trailing dot", ParseCPU, "5.", `invalid quantity "5."`},
		{"cpu leading space", ParseCPU, " 8", `invalid quantity " 8"`},
		{"cpu trailing space", ParseCPU, "8 ", `invalid quantity "8 "`},
		{"cpu trailing newline", ParseCPU, "8\n", `invalid quantity "8\n"`},
		{"cpu two spaces", ParseCPU, "8  cores", `invalid quantity "8  cores"`},
		{"cpu spaced millicores", ParseCPU, "500 m", `invalid quantity "500 m"`},
		{"cpu capital millicores", ParseCPU, "500M", `invalid quantity "500M"`},
		{"cpu byte unit", ParseCPU, "8GB", `invalid quantity "8GB"`},
		{"cpu comma", ParseCPU, "2,5", `invalid quantity "2,5"`},
		{"cpu non-ASCII digit", ParseCPU, "٨", `invalid quantity "٨"`},
		{"cpu too long", ParseCPU, strings.Repeat("1", 41), "longer than 40 characters"},
		{"cpu overflow", ParseCPU, "9999999999999999999", `invalid quantity "9999999999999999999": too large`},
		{"cpu just over the largest", ParseCPU, "4611686018427387.904 cores", "too large"},
		{"bytes word", ParseBytes, "lots", `invalid quantity "lots": want a number with a unit such as "32GB"`},
		{"bytes lower case", ParseBytes, "32gb", `invalid quantity "32gb"`},
		{"bytes lower case binary", ParseBytes, "32gib", `invalid quantity "32gib"`},
		{"bytes without a unit", ParseBytes, "32", `invalid quantity "32"`},
		{"bytes unknown unit", ParseBytes, "32EB", `invalid quantity "32EB"`},
		{"bytes bits", ParseBytes, "32Gb", `invalid quantity "32Gb"`},
		{"bytes binary without B", ParseBytes, "32Gi", `invalid quantity "32Gi"`},
		{"bytes empty", ParseBytes, "", `invalid quantity ""`},
		{"bytes negative", ParseBytes, "-1GB", `invalid quantity "-1GB"`},
		{"bytes exponent", ParseBytes, "1e3GB", `invalid quantity "1e3GB"`},
		{"bytes unit first", ParseBytes, "GB32", `invalid quantity "GB32"`},
		{"bytes cpu form", ParseBytes, "8 cores", `invalid quantity "8 cores"`},
		{"bytes too long", ParseBytes, strings.Repeat("1", 39) + "GB", "longer than 40 characters"},
		{"bytes overflow", ParseBytes, "99999999PiB", `invalid quantity "99999999PiB": too large`},
		{"bytes just over the largest", ParseBytes, "4611686018427387904B", "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.parse(tc.in)
			if err == nil {
				t.Fatalf("parsing %q = %d, nil; want an error", tc.in, got)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFormatCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 cores"},
		{1, "1m"},
		{500, "500m"},
		{999, "999m"},
		{1000, "1 core"},
		{1001, "1.001 cores"},
		{1010, "1.01 cores"},
		{1100, "1.1 cores"},
		{1500, "1.5 cores"},
		{2000, "2 cores"},
		{8000, "8 cores"},
		{12345, "12.345 cores"},
		{math.MaxInt64 / 2, "4611686018427387.903 cores"},
	}
	for _, tc := range tests {
		if got := FormatCPU(tc.in); got != tc.want {
			t.Errorf("FormatCPU(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{999, "999B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1500, "1500B"},
		{32e9, "32GB"},
		{32 << 30, "32GiB"},
		{512 << 20, "512MiB"},
		{1.5e12, "1500GB"},
		{500e9, "500GB"},
		{2 << 50, "2PiB"},
		{2e15, "2PB"},
		{1<<20 - 1, "~1.0MiB"},
		{9999, "9999B"},
		{69512e6, "~69.5GB"},      // exact in MB, but five digits: approximate, decimal family
		{11392 << 20, "~11.1GiB"}, // exact in MiB, but five digits: approximate, binary family
		{8192 << 20, "8GiB"},
		{1<<20 + 1, "~1.0MiB"},
		{1e9 + 1, "~953.7MiB"},
		{1<<30 - 1, "~1.0GiB"}, // rounds up into the next unit
		{1<<30 + 1, "~1.0GiB"},
		{3<<29 + 1, "~1.5GiB"},
		{1<<60 + 1, "~1024.0PiB"}, // no unit above PiB
	}
	for _, tc := range tests {
		if got := FormatBytes(tc.in); got != tc.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{
		"8 cores", "1 core", "8", "2.5", "500m", "0.5m", "32GB", "32GiB", "512MiB", "1.5TB", "500G",
		"0.5B", "eight", "8 Cores", "32gb", "-1", "1e3", "", "4611686018427387.903 cores", "99999999PiB",
		strings.Repeat("9", 41),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParse(t, "ParseCPU", ParseCPU, FormatCPU, s)
		checkParse(t, "ParseBytes", ParseBytes, FormatBytes, s)
	})
}

// checkParse checks one parser on s: it fails with ErrSyntax or returns a
// non-negative value whose exact formatting parses back to it.
func checkParse(t *testing.T, name string, parse func(string) (int64, error), format func(int64) string, s string) {
	t.Helper()
	n, err := parse(s)
	if err != nil {
		if !errors.Is(err, ErrSyntax) {
			t.Fatalf("%s(%q): error %v does not wrap ErrSyntax", name, s, err)
		}
		return
	}
	if n < 0 || n > math.MaxInt64/2 {
		t.Fatalf("%s(%q) = %d, out of range", name, s, n)
	}
	text := format(n)
	if strings.HasPrefix(text, "~") {
		return
	}
	back, err := parse(text)
	if err != nil || back != n {
		t.Fatalf("%s(%q) = %d, formatted as %q, which parses to %d, %v", name, s, n, text, back, err)
	}
}
