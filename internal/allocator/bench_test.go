package allocator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchProblem is a composition of n services shaped like the pods of the
// Alibaba OpenB trace (cpu requests of 1 to 32 cores with 2 to 8 GiB per
// core, a few GiB to a TB of disk), each valued by DiminishingReturns from
// a priority weight, memory per core kept by a KeepRatio coupling, and
// limits at 60 to 70 percent of the desired totals, so every limit binds and
// many couplings do.
func benchProblem(n int) *Problem {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	cores := []float64{1, 2, 4, 6, 8, 12, 16, 32}
	p := &Problem{Services: make([]Service, n)}
	var want [R]float64
	type size struct{ min, desired [R]float64 }
	sizes := make([]size, n)
	for i := range sizes {
		cpu := cores[rng.IntN(len(cores))] * 1000
		mem := cpu / 1000 * float64(int64(2+rng.IntN(7))<<30)
		disk := math.Round(math.Exp(rng.Float64()*6) * 5e9)
		d := [R]float64{cpu, mem, disk}
		var m [R]float64
		for r := range R {
			m[r] = math.Floor(d[r] * (0.2 + 0.5*rng.Float64()))
			want[r] += d[r]
		}
		sizes[i] = size{m, d}
	}
	for r := range R {
		p.Limits[r] = math.Floor(want[r] * (0.6 + 0.1*float64(r)/2))
		p.Costs[r] = 0.05 / p.Limits[r]
	}
	for i := range p.Services {
		s := &p.Services[i]
		s.Name = fmt.Sprintf("svc-%05d", i)
		weight := float64(1 + rng.IntN(10))
		for r := range R {
			s.Demand[r] = DiminishingReturns(sizes[i].min[r], sizes[i].desired[r], weight, p.Limits[r])
		}
		if c, ok := KeepRatio(s, Memory, CPU); ok {
			s.Couplings = append(s.Couplings, c)
		}
	}
	return p
}

func benchmarkAllocate(b *testing.B, n int) {
	p := benchProblem(n)
	b.ReportAllocs()
	var res *Result
	for b.Loop() {
		var err error
		if res, err = Allocate(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(res.Iterations), "iterations")
}

func BenchmarkAllocate100(b *testing.B)   { benchmarkAllocate(b, 100) }
func BenchmarkAllocate1000(b *testing.B)  { benchmarkAllocate(b, 1000) }
func BenchmarkAllocate10000(b *testing.B) { benchmarkAllocate(b, 10000) }

func BenchmarkSimplex100(b *testing.B) {
	p := benchProblem(100)
	for b.Loop() {
		if _, err := AllocateSimplex(p); err != nil {
			b.Fatal(err)
		}
	}
}

// benchmarkGLPSOL times glpsol solving the same instance as a process,
// reading the LP and writing its solution to files, as a caller would.
func benchmarkGLPSOL(b *testing.B, n int) {
	bin := glpsol(b)
	p := benchProblem(n)
	dir := b.TempDir()
	mps := filepath.Join(dir, "p.mps")
	if err := os.WriteFile(mps, writeMPS(p, unitsOf(p)), 0o600); err != nil {
		b.Fatal(err)
	}
	sol := filepath.Join(dir, "p.sol")
	for b.Loop() {
		if out, err := exec.Command(bin, "--freemps", mps, "--write", sol).CombinedOutput(); err != nil {
			b.Fatalf("glpsol: %v\n%s", err, out)
		}
	}
}

func BenchmarkGLPSOL1000(b *testing.B)  { benchmarkGLPSOL(b, 1000) }
func BenchmarkGLPSOL10000(b *testing.B) { benchmarkGLPSOL(b, 10000) }
