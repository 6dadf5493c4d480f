// Package quantity parses and formats the compute quantities manifests and
// templates use: CPU as "8 cores", "8", "2.5" or "500m"; memory and disk as
// "32GB" (10^9), "32GiB" (2^30), "512MiB", "1.5TB" or "500G" (read as GB).
package quantity

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
)

// maxLen bounds the text parsed, so hostile input cannot make the decimal
// arithmetic expensive.
const maxLen = 40

// CPUForms and ByteForms say what is accepted, for error messages.
const (
	CPUForms  = `a number of cores such as "8 cores", "1 core", "8" or "2.5", or millicores such as "500m"`
	ByteForms = `a number with a unit such as "32GB", "512MiB", "1.5TB" or "500G": B, KB, MB, GB, TB, PB (powers of 1000; K, M, G, T, P mean the same) or KiB, MiB, GiB, TiB, PiB (powers of 1024)`
)

var (
	cpuPattern   = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(?: ?(cores?)|(m))?$`)
	bytesPattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?([KMGTP]i?B|[KMGTP]|B)$`)
)

var byteUnits = map[string]int64{
	"B": 1,
	"K": 1e3, "KB": 1e3, "KiB": 1 << 10,
	"M": 1e6, "MB": 1e6, "MiB": 1 << 20,
	"G": 1e9, "GB": 1e9, "GiB": 1 << 30,
	"T": 1e12, "TB": 1e12, "TiB": 1 << 40,
	"P": 1e15, "PB": 1e15, "PiB": 1 << 50,
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid quantity")

// ParseCPU returns the millicores s denotes. Fractions of a millicore round
// up, as Kubernetes does.
func ParseCPU(s string) (int64, error) {
	if err := checkLen(s); err != nil {
		return 0, err
	}
	m := cpuPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%w %s: want %s", ErrSyntax, quote(s), CPUForms)
	}
	scale := int64(1000)
	if m[3] == "m" {
		scale = 1
	}
	return scaled(m[1], scale, s)
}

// ParseBytes returns the bytes s denotes. Fractions of a byte round up.
func ParseBytes(s string) (int64, error) {
	if err := checkLen(s); err != nil {
		return 0, err
	}
	m := bytesPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%w %s: want %s", ErrSyntax, quote(s), ByteForms)
	}
	return scaled(m[1], byteUnits[m[2]], s)
}

func checkLen(s string) error {
	if len(s) > maxLen {
		return fmt.Errorf("%w %s: longer than %d characters", ErrSyntax, quote(s), maxLen)
	}
	return nil
}

func scaled(number string, unit int64, s string) (int64, error) {
	r, ok := new(big.Rat).SetString(number)
	if !ok {
		return 0, fmt.Errorf("%w %s: not a number", ErrSyntax, quote(s))
	}
	r.Mul(r, new(big.Rat).SetInt64(unit))
	// Ceiling of a non-negative rational: (num + den - 1) / den.
	num, den := r.Num(), r.Denom()
	q := new(big.Int).Add(num, new(big.Int).Sub(den, big.NewInt(1)))
	q.Quo(q, den)
	if !q.IsInt64() || q.Int64() > math.MaxInt64/2 {
		return 0, fmt.Errorf("%w %s: too large", ErrSyntax, quote(s))
	}
	return q.Int64(), nil
}

func quote(s string) string {
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// FormatCPU writes millicores the way people read them: "8 cores", "2.5 cores", "500m".
func FormatCPU(millicores int64) string {
	switch {
	case millicores == 1000:
		return "1 core"
	case millicores%1000 == 0:
		return fmt.Sprintf("%d cores", millicores/1000)
	case millicores > 1000 && millicores%100 == 0:
		return fmt.Sprintf("%d.%d cores", millicores/1000, millicores%1000/100)
	case millicores > 1000 && millicores%10 == 0:
		return fmt.Sprintf("%d.%02d cores", millicores/1000, millicores%1000/10)
	case millicores > 1000:
		return fmt.Sprintf("%d.%03d cores", millicores/1000, millicores%1000)
	default:
		return fmt.Sprintf("%dm", millicores)
	}
}

// FormatBytes writes bytes the way people read them: exactly in the largest
// unit that divides them ("32GB", "512MiB") while that takes fewer than five
// digits, or else approximately, to one decimal place, in the largest unit
// of the same family that fits ("~69.5GB", "~1.1GiB").
func FormatBytes(b int64) string {
	type unit struct {
		name string
		size int64
	}
	binary := []unit{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	decimal := []unit{{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}}
	family := binary
	for i := range binary {
		for _, f := range [][]unit{binary, decimal} {
			u := f[i]
			if b == 0 || b%u.size != 0 {
				continue
			}
			if b/u.size < 10000 {
				return fmt.Sprintf("%d%s", b/u.size, u.name)
			}
			family = f
		}
	}
	if b < 10000 {
		return fmt.Sprintf("%dB", b)
	}
	for i, u := range family {
		if b < u.size {
			continue
		}
		n := strconv.FormatFloat(float64(b)/float64(u.size), 'f', 1, 64)
		if i > 0 && (n == "1024.0" || n == "1000.0") {
			// Rounding reached the next unit: "~1.0GiB", not "~1024.0MiB".
			u, n = family[i-1], "1.0"
		}
		return "~" + n + u.name
	}
	return fmt.Sprintf("%dB", b)
}
