package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
)

// podSizes reads (cpu millicores, memory MiB) of the first n tasks of the
// Alibaba OpenB trace shipped in data/, so benchmark services have real sizes.
func podSizes(tb testing.TB, n int) [][2]int {
	tb.Helper()
	f, err := os.Open("../../data/alibaba-openb/openb_pod_list_default.csv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	if _, err := r.Read(); err != nil { // header
		tb.Fatal(err)
	}
	var out [][2]int
	for len(out) < n {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		cpu, _ := strconv.Atoi(rec[1])
		mem, _ := strconv.Atoi(rec[2])
		out = append(out, [2]int{cpu, mem})
	}
	return out
}

// writeCatalog writes templates × perTemplate services into dir as Compose
// templates whose names, host ports and variables collide across templates,
// and returns the manifest composing all of them.
func writeCatalog(tb testing.TB, dir string, templates, perTemplate int) string {
	tb.Helper()
	sizes := podSizes(tb, templates*perTemplate)
	rng := rand.New(rand.NewPCG(1, 2))
	images := []string{"postgres:16.4", "redis:7.2-alpine", "nginx:1.27", "grafana/grafana:11.2.0", "ghcr.io/acme/api:1.4.2"}
	var sources []string
	for t := range templates {
		id := fmt.Sprintf("tpl_%02d", t)
		var b strings.Builder
		fmt.Fprintf(&b, "x-snapcompose:\n  id: %s\n  tags: [bench]\n  env:\n", id)
		for e := range 10 {
			fmt.Fprintf(&b, "    VAR_%02d: \"%d\"\n", (t*3+e)%30, rng.IntN(3))
		}
		b.WriteString("services:\n")
		names := rng.Perm(300)[:perTemplate]
		ports := rng.Perm(500)[:perTemplate]
		for j, n := range names {
			size := sizes[(t*perTemplate+j)%len(sizes)]
			fmt.Fprintf(&b, "  svc%03d:\n    image: %s\n    ports: [\"%d:%d\"]\n", n, images[n%len(images)], 8000+ports[j], 80+j)
			if j > 0 && j%3 == 0 {
				fmt.Fprintf(&b, "    depends_on: [svc%03d]\n", names[j-1])
			}
			fmt.Fprintf(&b, "    deploy:\n      resources:\n        limits: {cpus: \"%.3f\", memory: %dM}\n        reservations: {cpus: \"%.3f\", memory: %dM}\n",
				float64(size[0])/1000, size[1], float64(size[0])/2000, size[1]/2)
			fmt.Fprintf(&b, "    x-snapcompose: {disk: 2GB}\n")
		}
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		sources = append(sources, fmt.Sprintf(`{"type": "template", "id": %q, "priority": %d}`, id, t%4))
	}
	manifest := fmt.Sprintf(`{"name": "bench", "sources": [%s], "conflict_resolution": "PRIORITY",
		"resource_limits": {"cpu": "100000 cores", "memory": "1000TB", "disk": "1000TB"}}`, strings.Join(sources, ","))
	path := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func benchPlan(b *testing.B, manifest, catalog string) {
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}
	args := []string{"plan", "-f", manifest, "--catalog", catalog, "--output", "json"}
	if code := m.Run(context.Background(), args); code != 0 {
		var errOut strings.Builder
		(&Main{Stdout: io.Discard, Stderr: &errOut}).Run(context.Background(), args)
		b.Fatalf("plan exited %d: %s", code, errOut.String())
	}
	b.ResetTimer()
	for b.Loop() {
		m.Run(context.Background(), args)
	}
}

// BenchmarkPlanSeed times the whole plan command on the example: read the
// manifest, load both templates with compose-go, settle the conflicts and
// write the JSON plan.
func BenchmarkPlanSeed(b *testing.B) {
	benchPlan(b, seedTemplates, seedCatalog)
}

// BenchmarkPlan1000Services times the plan command on 20 generated templates
// of 50 services each, sized from the Alibaba OpenB trace.
func BenchmarkPlan1000Services(b *testing.B) {
	dir := b.TempDir()
	manifest := writeCatalog(b, dir, 20, 50)
	benchPlan(b, manifest, dir)
}

// BenchmarkHTTPDryRun: dry-run plans of the seed (templates, AI_AGENT with
// the committed model) over HTTP, four clients at once on this 2-core
// machine: plans per second, and p50/p99 latency as the clients see it.
func BenchmarkHTTPDryRun(b *testing.B) {
	agenttest.Library(b)
	_, dbURL := pgtest.NewDatabase(b)
	base := startServer(b, dbURL, "--model", agenttest.ModelPath(), "--model-poll", "0", "--catalog", seedCatalog)
	seed, err := os.ReadFile(seedTemplates)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Replace(seed, []byte(`"PRIORITY"`), []byte(`"AI_AGENT"`), 1)
	loadTest(b, 4, "plans/s", func() error {
		_, err := post(base+"/v1/compositions?dry_run=true", body, http.StatusOK)
		return err
	})
}

// BenchmarkHTTPCompose: durable compositions of the seed (templates,
// AI_AGENT) over HTTP, four clients at once, each POSTing and polling until
// its composition has succeeded — composed, recorded, provisioned and
// instantiated by the server's job queue: compositions per second, and
// p50/p99 from the POST to success.
func BenchmarkHTTPCompose(b *testing.B) {
	agenttest.Library(b)
	_, dbURL := pgtest.NewDatabase(b)
	base := startServer(b, dbURL, "--model", agenttest.ModelPath(), "--model-poll", "0", "--catalog", seedCatalog, "--pool", "bench")
	st := openTestStore(b, dbURL)
	if err := st.UpsertPool(context.Background(), "bench", domain.Resources{CPUMillicores: 1 << 40, MemoryBytes: 1 << 60, DiskBytes: 1 << 60}); err != nil {
		b.Fatal(err)
	}
	seed, err := os.ReadFile(seedTemplates)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Replace(seed, []byte(`"PRIORITY"`), []byte(`"AI_AGENT"`), 1)
	loadTest(b, 4, "compositions/s", func() error {
		raw, err := post(base+"/v1/compositions", body, http.StatusAccepted)
		if err != nil {
			return err
		}
		var c struct{ ID string }
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
		for {
			got, err := st.GetComposition(context.Background(), c.ID)
			if err != nil {
				return err
			}
			if got.Status.Final() {
				if got.Status != domain.StatusSucceeded {
					return fmt.Errorf("composition %s: %s", got.Status, got.Error)
				}
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// post POSTs body as the composer and wants status back.
func post(url string, body []byte, want int) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Composer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != want {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	return raw, err
}

// loadTest runs do once per iteration from clients goroutines at once and
// reports the rate (per second, named unit) and p50/p99 latency.
func loadTest(b *testing.B, clients int, unit string, do func() error) {
	var mu sync.Mutex
	var lat []time.Duration
	next := make(chan struct{})
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range next {
				start := time.Now()
				if err := do(); err != nil {
					errs <- err
					for range next {
					}
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for b.Loop() {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), unit)
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
