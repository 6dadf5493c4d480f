package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
)

// TestLoad is `make load`: for LOAD_DURATION (default 60s) it POSTs
// compositions of the seed's templates (AI_AGENT) at LOAD_RATE a second
// (default 10) to LOAD_SERVERS server processes (default 2) sharing one
// database and a capacity pool with room for a few at once; each client
// waits for its composition to finish and tears a succeeded one down,
// freeing its capacity. At the end it checks that every accepted
// composition reached a final state exactly once, that the pool was never
// over-committed at any instant, and that the servers' memory stayed flat,
// and prints throughput, latency, errors and peak RSS. It runs only with
// SNAPCOMPOSE_LOAD=1.
func TestLoad(t *testing.T) {
	if os.Getenv("SNAPCOMPOSE_LOAD") == "" {
		t.Skip("set SNAPCOMPOSE_LOAD=1 (make load)")
	}
	agenttest.Library(t)
	rate := envFloat(t, "LOAD_RATE", 10)
	duration := envDuration(t, "LOAD_DURATION", 60*time.Second)
	servers := int(envFloat(t, "LOAD_SERVERS", 2))
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)

	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	os.WriteFile(tokens, []byte(fmt.Sprintf("tokens:\n  - {name: load, role: composer, sha256: %s}\n", httpapi.HashToken(testTokens[httpapi.Composer]))), 0o600)
	env := map[string]string{"DATABASE_URL": dbURL, "SNAPCOMPOSE_TOKENS_FILE": tokens}
	var bases []string
	var pids []int
	for i := range servers {
		addr := freePort(t)
		p := serverProcess(t, env, "--addr", addr, "--data-dir", t.TempDir(), "--model", agenttest.ModelPath(), "--model-poll", "0",
			"--catalog", seedCatalog, "--pool", "load", "--workers", "4", "--rate-limit", "100000", "--worker-id", fmt.Sprintf("load-%d", i))
		waitUp(t, "http://"+addr)
		bases = append(bases, "http://"+addr)
		pids = append(pids, p.Process.Pid)
	}
	seed, _ := os.ReadFile(seedTemplates)
	body := bytes.Replace(seed, []byte(`"PRIORITY"`), []byte(`"AI_AGENT"`), 1)
	// One composition's totals, and a pool with room for 4 at once.
	var plan domain.Plan
	raw, err := post(bases[0]+"/v1/compositions?dry_run=true", body, http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(raw, &plan)
	capacity := domain.Resources{CPUMillicores: plan.Totals.CPUMillicores * 4, MemoryBytes: plan.Totals.MemoryBytes * 4, DiskBytes: plan.Totals.DiskBytes * 4}
	if err := st.UpsertPool(context.Background(), "load", capacity); err != nil {
		t.Fatal(err)
	}

	// Memory: every server's resident set, each second.
	var rssMu sync.Mutex
	rss := make([][]int64, servers)
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			rssMu.Lock()
			for i, pid := range pids {
				rss[i] = append(rss[i], procStatus(pid, "VmRSS"))
			}
			rssMu.Unlock()
		}
	})

	type result struct {
		id       string
		accepted time.Duration // POST
		total    time.Duration // POST to final
		status   string
		slow     bool // not final within the client's 2 minutes
		err      error
	}
	var mu sync.Mutex
	var results []result
	var inFlight atomic.Int64
	var clients sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(n int) {
		defer clients.Done()
		base := bases[n%len(bases)]
		start := time.Now()
		raw, err := post(base+"/v1/compositions", body, http.StatusAccepted)
		r := result{accepted: time.Since(start)}
		if err == nil {
			var c struct{ ID string }
			json.Unmarshal(raw, &c)
			r.id = c.ID
			for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
				req, _ := http.NewRequest(http.MethodGet, base+"/v1/compositions/"+c.ID, nil)
				req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Composer])
				resp, gerr := client.Do(req)
				if gerr != nil {
					err = gerr
					break
				}
				var got struct{ Status string }
				json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if domain.CompositionStatus(got.Status).Final() {
					r.status = got.Status
					break
				}
				if time.Now().After(deadline) {
					r.slow = true // the queue is behind; the end of the run waits for it
					break
				}
			}
			r.total = time.Since(start)
			if r.status == "succeeded" { // tear it down: its capacity goes back
				req, _ := http.NewRequest(http.MethodDelete, base+"/v1/compositions/"+c.ID, nil)
				req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Composer])
				if resp, derr := client.Do(req); derr != nil {
					err = derr
				} else {
					resp.Body.Close()
				}
			}
		}
		r.err = err
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		inFlight.Add(-1)
	}
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	start := time.Now()
	n := 0
	for time.Since(start) < duration {
		<-tick.C
		clients.Add(1)
		inFlight.Add(1)
		go do(n)
		n++
	}
	tick.Stop()
	sent := time.Since(start)
	clients.Wait()
	elapsed := time.Since(start)
	close(stopSampling)
	sampler.Wait()

	// Figures.
	var accepted, totals []time.Duration
	byStatus := map[string]int{}
	var errs []string
	slow := 0
	for _, r := range results {
		if r.id != "" {
			accepted = append(accepted, r.accepted)
		}
		switch {
		case r.err != nil:
			errs = append(errs, r.err.Error())
		case r.slow:
			slow++
		default:
			totals = append(totals, r.total)
			byStatus[r.status]++
		}
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	fmt.Printf("load: %d requests in %s (%.2f/s asked, %.2f/s sent) to %d servers; all done after %s\n",
		n, sent.Round(time.Millisecond), rate, float64(n)/sent.Seconds(), servers, elapsed.Round(time.Millisecond))
	fmt.Printf("load: POST p50 %s p99 %s; POST to final p50 %s p99 %s\n",
		q(accepted, .5).Round(time.Millisecond), q(accepted, .99).Round(time.Millisecond), q(totals, .5).Round(time.Millisecond), q(totals, .99).Round(time.Millisecond))
	fmt.Printf("load: final states seen by the clients %v; not final within a client's 2 minutes %d; errors %d\n", byStatus, slow, len(errs))
	for i, pid := range pids {
		series := rss[i]
		if len(series) < 8 {
			continue
		}
		quarter := len(series) / 4
		early, late := mean(series[quarter:2*quarter]), mean(series[len(series)-quarter:])
		peak := procStatus(pid, "VmHWM")
		fmt.Printf("load: server %d: RSS %.1f MiB in the second quarter, %.1f MiB in the last (%+.1f%%); peak %.1f MiB\n",
			i, early/(1<<20), late/(1<<20), 100*(late-early)/early, float64(peak)/(1<<20))
		if late > early*1.5 {
			t.Errorf("server %d's memory grew by %.0f%% over the run", i, 100*(late-early)/early)
		}
	}
	if len(errs) > 0 {
		t.Errorf("%d errors, the first: %s", len(errs), errs[0])
	}

	// Exactly once: every accepted composition is final, its job ran to
	// completion once, and it holds at most one reservation, released.
	ctx := context.Background()
	// The queue drains (when the rate was above what the servers keep up
	// with, the clients stopped waiting), River marks the last jobs
	// completed, and what the clients could not tear down is torn down.
	drained := time.Now()
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var running int
		st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled'))
			+ (SELECT count(*) FROM compositions WHERE status NOT IN ('succeeded', 'failed', 'cancelled'))`).Scan(&running)
		if running == 0 {
			break
		}
	}
	if slow > 0 {
		fmt.Printf("load: the queue drained %s after the clients finished\n", time.Since(drained).Round(time.Second))
		rows, _ := st.Pool().Query(ctx, `SELECT id::text FROM compositions WHERE status = 'succeeded' AND released_at IS NULL`)
		var ids []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			req, _ := http.NewRequest(http.MethodDelete, bases[0]+"/v1/compositions/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Composer])
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	var notFinal, jobsNotDone, multiReserved, held int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM compositions WHERE status NOT IN ('succeeded', 'failed', 'cancelled')`).Scan(&notFinal)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed' OR attempt <> 1`).Scan(&jobsNotDone)
	if jobsNotDone > 0 {
		rows, _ := st.Pool().Query(ctx, `SELECT id, state, attempt, errors::text FROM river_job WHERE state <> 'completed' OR attempt <> 1 LIMIT 3`)
		for rows.Next() {
			var id int64
			var state, errs string
			var attempt int
			rows.Scan(&id, &state, &attempt, &errs)
			fmt.Printf("load: job %d %s after %d attempts: %.300s\n", id, state, attempt, errs)
		}
		rows.Close()
	}
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM (SELECT composition_id FROM reservations GROUP BY composition_id HAVING count(*) > 1) x`).Scan(&multiReserved)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM reservations WHERE released_at IS NULL`).Scan(&held)
	var recorded int
	var finalStates string
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM compositions`).Scan(&recorded)
	st.Pool().QueryRow(ctx, `SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM compositions GROUP BY status ORDER BY status) x`).Scan(&finalStates)
	fmt.Printf("load: final states in the history: %s\n", finalStates)
	fmt.Printf("load: %d compositions recorded for %d accepted; not final %d; jobs not completed once %d; compositions with more than one reservation %d; reservations still held %d\n",
		recorded, len(accepted), notFinal, jobsNotDone, multiReserved, held)
	if recorded != len(accepted) || notFinal != 0 || jobsNotDone != 0 || multiReserved != 0 || held != 0 {
		t.Errorf("not exactly once: see the line above")
	}
	// Never over-committed: at every instant a reservation was made, the
	// reservations active then fit the capacity.
	var worstCPU, worstMem, worstDisk int64
	err = st.Pool().QueryRow(ctx, `
		SELECT coalesce(max(cpu), 0), coalesce(max(mem), 0), coalesce(max(disk), 0) FROM (
			SELECT (SELECT sum(o.cpu_millicores) FROM reservations o WHERE o.created_at <= r.created_at AND (o.released_at IS NULL OR o.released_at > r.created_at)) AS cpu,
			       (SELECT sum(o.memory_bytes) FROM reservations o WHERE o.created_at <= r.created_at AND (o.released_at IS NULL OR o.released_at > r.created_at)) AS mem,
			       (SELECT sum(o.disk_bytes) FROM reservations o WHERE o.created_at <= r.created_at AND (o.released_at IS NULL OR o.released_at > r.created_at)) AS disk
			FROM reservations r) x`).Scan(&worstCPU, &worstMem, &worstDisk)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("load: pool at its fullest: cpu %d of %d millicores, memory %d of %d bytes (%d compositions provisioned)\n",
		worstCPU, capacity.CPUMillicores, worstMem, capacity.MemoryBytes, byStatus["succeeded"])
	if worstCPU > capacity.CPUMillicores || worstMem > capacity.MemoryBytes || worstDisk > capacity.DiskBytes {
		t.Errorf("the pool was over-committed")
	}
}

func envFloat(t *testing.T, name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return f
	}
	return def
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a duration such as 60s", name, v)
		}
		return d
	}
	return def
}

// procStatus reads a size field (VmRSS, VmHWM) of /proc/PID/status, in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mean(xs []int64) float64 {
	s := 0.0
	for _, x := range xs {
		s += float64(x)
	}
	return s / float64(len(xs))
}
