package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/internal/snapagent"
)

// The bad-input catalogue, testdata/bad/: hostile or broken manifests,
// templates, hosts files, API requests, agent requests and usage files,
// each with the class of error it must get (an exit code, or an HTTP
// status) and a fragment of the message, in the directory's expect.tsv.
// None may panic, hang, answer 500, write part of itself or echo a token.
// SNAPCOMPOSE_BAD_PRINT=1 prints what each case gets instead of checking.
const badDir = "../../testdata/bad"

type badCase struct {
	kind, name, file string
	want             string // "exit N" or an HTTP status
	fragment         string
}

func badCases(t *testing.T, kind string) []badCase {
	t.Helper()
	f, err := os.Open(filepath.Join(badDir, kind, "expect.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []badCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("%s/expect.tsv: %q: want name, class and fragment separated by tabs", kind, line)
		}
		matches, _ := filepath.Glob(filepath.Join(badDir, kind, parts[0]+".*"))
		if len(matches) != 1 {
			t.Fatalf("%s/expect.tsv: case %s has %d input files", kind, parts[0], len(matches))
		}
		cases = append(cases, badCase{kind: kind, name: parts[0], file: matches[0], want: parts[1], fragment: parts[2]})
	}
	// Every input file has its expectation.
	entries, _ := os.ReadDir(filepath.Join(badDir, kind))
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		if e.Name() == "expect.tsv" {
			continue
		}
		found := false
		for _, c := range cases {
			found = found || c.name == name
		}
		if !found {
			t.Errorf("%s/%s has no line in expect.tsv", kind, e.Name())
		}
	}
	return cases
}

// check compares what a case got with what it must.
func (c badCase) check(t *testing.T, got, message string) {
	t.Helper()
	if os.Getenv("SNAPCOMPOSE_BAD_PRINT") != "" {
		first, _, _ := strings.Cut(strings.TrimSpace(message), "\n")
		fmt.Printf("%s\t%s\t%s\t%s\n", c.kind, c.name, got, first)
		return
	}
	if got != c.want || !strings.Contains(message, c.fragment) {
		t.Errorf("%s/%s: got %s %q; want %s with %q", c.kind, c.name, got, message, c.want, c.fragment)
	}
	if got == "500" || strings.Contains(message, "panic") || strings.Contains(message, "goroutine ") {
		t.Errorf("%s/%s: an internal failure: %s", c.kind, c.name, message)
	}
	for _, tok := range testTokens {
		if strings.Contains(message, tok) {
			t.Errorf("%s/%s: the answer echoes a token", c.kind, c.name)
		}
	}
}

// runCLI runs snapcompose in-process with a deadline; a hang fails.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, args) }()
	select {
	case code := <-done:
		return "exit " + strconv.Itoa(code), errOut.String()
	case <-time.After(40 * time.Second):
		t.Fatalf("snapcompose %s hung", strings.Join(args, " "))
	}
	return "", ""
}

func TestBadManifests(t *testing.T) {
	t.Parallel()
	for _, c := range badCases(t, "manifests") {
		got, msg := runCLI(t, nil, "plan", "-f", c.file, "--catalog", seedCatalog)
		c.check(t, got, msg)
	}
}

func TestBadTemplates(t *testing.T) {
	t.Parallel()
	for _, c := range badCases(t, "templates") {
		dir := t.TempDir()
		body, _ := os.ReadFile(c.file)
		if err := os.WriteFile(filepath.Join(dir, c.name+".yaml"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		manifest := writeTemp(t, "manifest.json", fmt.Sprintf(`{"name": "t", "sources": [{"type": "template", "id": %q, "priority": 0}],
			"conflict_resolution": "PRIORITY", "resource_limits": {"cpu": "64", "memory": "256GB", "disk": "10TB"}}`, c.name))
		got, msg := runCLI(t, map[string]string{"IMAGE": "nginx"}, "plan", "-f", manifest, "--catalog", dir)
		c.check(t, got, msg)
	}
}

func TestBadHostsFiles(t *testing.T) {
	t.Parallel()
	manifest := writeTemp(t, "manifest.json", `{"name": "h", "sources": [{"type": "live", "host": "production_server_1", "path": "/var/app", "priority": 0}],
		"conflict_resolution": "PRIORITY", "resource_limits": {"cpu": "8", "memory": "32GB", "disk": "500GB"}}`)
	for _, c := range badCases(t, "hosts") {
		got, msg := runCLI(t, map[string]string{"X": "a-token-for-the-agent-0123456789"}, "plan", "-f", manifest, "--hosts", c.file)
		c.check(t, got, msg)
		if strings.Contains(msg, "hunter2") {
			t.Errorf("hosts/%s: the error shows the URL's password", c.name)
		}
	}
}

func TestBadUsageFiles(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDatabase(t)
	for _, c := range badCases(t, "usage") {
		got, msg := runCLI(t, map[string]string{"DATABASE_URL": dbURL}, "import", "usage", "--format", "bitbrains", "--host", "bad-"+c.name, c.file)
		c.check(t, got, msg)
		var samples int
		pool.QueryRow(context.Background(), `SELECT count(*) FROM usage_samples u JOIN usage_series s ON s.id = u.series_id WHERE s.host = $1`, "bad-"+c.name).Scan(&samples)
		if samples != 0 {
			t.Errorf("usage/%s: %d samples stored from a broken file", c.name, samples)
		}
	}
}

func TestBadAgentRequests(t *testing.T) {
	t.Parallel()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, map[string]string{"var/app/a.txt": "a\n"})
	const token = "bad-input-agent-token-0123456789"
	agent, err := snapagent.New(snapagent.Config{Roots: []string{root}, Token: token, Hostname: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agent.Handler())
	defer srv.Close()
	for _, c := range badCases(t, "agent") {
		body, _ := os.ReadFile(c.file)
		body = bytes.ReplaceAll(body, []byte("{{root}}"), []byte(root))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/capture", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.check(t, strconv.Itoa(resp.StatusCode), string(msg))
	}
}

func TestBadAPIRequests(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	base := startServer(t, dbURL, "--model-poll", "0", "--catalog", seedCatalog, "--pool", "bad")
	unlimitedPool(t, st, "bad")
	composer := apitest.New(t)
	composer.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile(seedTemplates)
	code, body, _ := submit(t, composer, base, seed, "")
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v", code, body)
	}
	id := body["id"].(string)
	waitFinished(t, st, id, 60*time.Second)
	count := func() (n int) {
		st.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM compositions) + (SELECT count(*) FROM composition_outcomes) +
			(SELECT count(*) FROM usage_samples) + (SELECT count(*) FROM templates) + (SELECT count(*) FROM training_runs)`).Scan(&n)
		return n
	}
	for _, c := range badCases(t, "api") {
		raw, _ := os.ReadFile(c.file)
		text := strings.NewReplacer("{{admin}}", testTokens[httpapi.Admin], "{{composer}}", testTokens[httpapi.Composer],
			"{{analyst}}", testTokens[httpapi.Analyst], "{{id}}", id).Replace(string(raw))
		head, reqBody, _ := strings.Cut(text, "\n\n")
		lines := strings.Split(head, "\n")
		method, path, _ := strings.Cut(lines[0], " ")
		if reqBody == "{{big}}" {
			reqBody = `{"name": "` + strings.Repeat("x", 2<<20) + `"}`
		}
		req, err := http.NewRequest(method, base+path, strings.NewReader(reqBody))
		if err != nil {
			t.Fatalf("api/%s: %v", c.name, err)
		}
		for _, h := range lines[1:] {
			k, v, _ := strings.Cut(h, ": ")
			req.Header.Set(k, v)
		}
		before := count()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("api/%s: %v", c.name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.check(t, strconv.Itoa(resp.StatusCode), string(msg))
		if after := count(); after != before {
			t.Errorf("api/%s: a refused request changed the history (%d rows, then %d)", c.name, before, after)
		}
	}
}
