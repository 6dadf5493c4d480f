package main

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/simulate"
)

// TestHistoryAPI: the history of 80 simulated compositions (the
// simulator's outcomes included) read back over the API: filters, cursor
// pages that neither repeat nor miss a row, the CSV export, the summary,
// and the roles.
func TestHistoryAPI(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	pods, err := simulate.LoadPods("../../data/alibaba-openb/openb_pod_list_default.csv")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.New(7, pods)
	if err != nil {
		t.Fatal(err)
	}
	const n = 80
	if err := pipeline.Simulate(context.Background(), st, sim, n, 2, nil); err != nil {
		t.Fatal(err)
	}
	base := startServer(t, dbURL, "--model-poll", "0")
	analyst := apitest.New(t)
	analyst.Token = testTokens[httpapi.Analyst]
	count := func(q string) int {
		var k int
		if err := st.Pool().QueryRow(context.Background(), q).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}

	// pages follows the cursor through a listing and returns every row.
	pages := func(path, query, name string) []map[string]any {
		t.Helper()
		var all []map[string]any
		cursor := ""
		for range 100 {
			u := base + path + "?" + query
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			resp, raw := analyst.Get(t, u)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s = %d %s", u, resp.StatusCode, raw)
			}
			page := decode(t, u, raw)
			rows, _ := page[name].([]any)
			for _, r := range rows {
				all = append(all, r.(map[string]any))
			}
			next, _ := page["next_cursor"].(string)
			if next == "" {
				return all
			}
			cursor = next
		}
		t.Fatal("the listing never ended")
		return nil
	}
	unique := func(rows []map[string]any, key string) bool {
		seen := map[any]bool{}
		for _, r := range rows {
			if seen[r[key]] {
				return false
			}
			seen[r[key]] = true
		}
		return true
	}

	comps := pages("/v1/history/compositions", "limit=7", "compositions")
	if len(comps) != n || !unique(comps, "id") {
		t.Fatalf("paged through %d compositions (unique %v), want %d", len(comps), unique(comps, "id"), n)
	}
	for i := 1; i < len(comps); i++ {
		if comps[i]["created_at"].(string) > comps[i-1]["created_at"].(string) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	healthy := pages("/v1/history/compositions", "outcome=healthy&limit=50", "compositions")
	if want := count(`SELECT count(*) FROM analyst_compositions WHERE verdict = 'healthy'`); len(healthy) != want || want == 0 {
		t.Errorf("outcome=healthy: %d rows, the view has %d", len(healthy), want)
	}
	source := comps[0]["sources"].([]any)[0].(string)
	withSource := pages("/v1/history/compositions", "source="+url.QueryEscape(source), "compositions")
	if want := count(`SELECT count(DISTINCT composition_id) FROM composition_sources WHERE ref = '` + strings.ReplaceAll(source, "'", "''") + `'`); len(withSource) != want {
		t.Errorf("source=%s: %d rows, want %d", source, len(withSource), want)
	}
	if rows := pages("/v1/history/compositions", "strategy=FIRST_WIN", "compositions"); len(rows) != 0 {
		t.Errorf("strategy=FIRST_WIN: %d rows of simulated AI_AGENT history", len(rows))
	}

	conflicts := pages("/v1/history/conflicts", "limit=100", "conflicts")
	if want := count(`SELECT count(*) FROM conflicts`); len(conflicts) != want || !unique(conflicts, "id") {
		t.Fatalf("paged through %d conflicts, the history has %d", len(conflicts), want)
	}
	envKeep := pages("/v1/history/conflicts", "kind=env&action=keep&outcome=failed", "conflicts")
	want := count(`SELECT count(*) FROM conflicts cf JOIN analyst_compositions ac ON ac.id = cf.composition_id WHERE cf.kind = 'env' AND cf.action = 'keep' AND ac.verdict = 'failed'`)
	if len(envKeep) != want {
		t.Errorf("kind=env&action=keep&outcome=failed: %d rows, want %d", len(envKeep), want)
	}
	for _, c := range envKeep {
		if c["kind"] != "env" || c["action"] != "keep" || c["verdict"] != "failed" {
			t.Fatalf("a row that does not match the filter: %v", c)
		}
	}

	// The CSV export: every matching row, whatever the page size.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/history/conflicts?limit=5", nil)
	req.Header.Set("Accept", "text/csv")
	resp, raw := analyst.Do(t, req)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	records, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != len(conflicts)+1 || records[0][0] != "id" || records[0][5] != "kind" {
		t.Errorf("CSV: %d records with header %v, want %d rows and a header", len(records), records[0], len(conflicts))
	}

	_, sum, _ := getJSON(t, base+"/v1/history/summary")
	total := 0.0
	for _, s := range sum["strategies"].([]any) {
		total += s.(map[string]any)["compositions"].(float64)
	}
	if total != n || len(sum["conflicts"].([]any)) == 0 {
		t.Errorf("summary: %v compositions by strategy, %d conflict rows", total, len(sum["conflicts"].([]any)))
	}

	// Bad filters are named; a token is needed.
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/history/conflicts?kind=port&action=bend", nil)
	req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Analyst])
	bad, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != 400 {
		t.Errorf("action=bend = %d, want 400", bad.StatusCode)
	}
	for _, path := range []string{"/v1/history/compositions", "/v1/history/conflicts", "/v1/history/summary", "/v1/models", "/v1/models/promotions"} {
		if resp, err := http.Get(base + path); err != nil || resp.StatusCode != 401 {
			t.Errorf("GET %s without a token = %v %v, want 401", path, resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
	}
}

// TestLoopRoles: every history and model endpoint against every role.
// Reads are for analysts and up; promoting, rolling back and training are
// for admins only.
func TestLoopRoles(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL, "--model-poll", "0")
	type call struct {
		method, path, body string
		minRole            httpapi.Role
	}
	calls := []call{
		{http.MethodGet, "/v1/history/compositions", "", httpapi.Analyst},
		{http.MethodGet, "/v1/history/conflicts", "", httpapi.Analyst},
		{http.MethodGet, "/v1/history/summary", "", httpapi.Analyst},
		{http.MethodGet, "/v1/models", "", httpapi.Analyst},
		{http.MethodGet, "/v1/models/promotions", "", httpapi.Analyst},
		{http.MethodGet, "/v1/models/none-such", "", httpapi.Analyst},
		{http.MethodGet, "/v1/training-runs/1", "", httpapi.Analyst},
		{http.MethodPost, "/v1/models/none-such/promote", "", httpapi.Admin},
		{http.MethodPost, "/v1/models/rollback", "", httpapi.Admin},
		{http.MethodPost, "/v1/training-runs", `{"from": "2999-01-01T00:00:00Z"}`, httpapi.Admin},
	}
	rank := map[httpapi.Role]int{httpapi.Analyst: 0, httpapi.Composer: 1, httpapi.Admin: 2}
	for _, c := range calls {
		for _, role := range []httpapi.Role{httpapi.Analyst, httpapi.Composer, httpapi.Admin} {
			cl := apitest.New(t)
			cl.Token = testTokens[role]
			var req *http.Request
			if c.body != "" {
				req, _ = http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
				req.Header.Set("Content-Type", "application/json")
			} else {
				req, _ = http.NewRequest(c.method, base+c.path, nil)
			}
			resp, raw := cl.Do(t, req)
			allowed := rank[role] >= rank[c.minRole]
			if forbidden := resp.StatusCode == http.StatusForbidden; forbidden == allowed || resp.StatusCode == 401 || resp.StatusCode >= 500 {
				t.Errorf("%s %s as %s = %d %s; allowed: %v", c.method, c.path, role, resp.StatusCode, raw, allowed)
			}
		}
	}
}
