package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/snapcompose/snapcompose/internal/agenttest"
	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
	"github.com/snapcompose/snapcompose/training/pipeline"
	"github.com/snapcompose/snapcompose/training/simulate"
)

// dashboardServer serves a history of 40 simulated compositions and two
// of the seed's templates made through the API with AI_AGENT, and returns
// the server and one API composition.
func dashboardServer(t *testing.T) (base, id string) {
	t.Helper()
	agenttest.Library(t)
	_, dbURL := pgtest.NewDatabase(t)
	st := openTestStore(t, dbURL)
	pods, err := simulate.LoadPods("../../data/alibaba-openb/openb_pod_list_default.csv")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.New(11, pods)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Simulate(context.Background(), st, sim, 40, 2, nil); err != nil {
		t.Fatal(err)
	}
	base = startServer(t, dbURL, "--model", agenttest.ModelPath(), "--model-poll", "0", "--catalog", seedCatalog, "--pool", "ui")
	unlimitedPool(t, st, "ui")
	composer := apitest.New(t)
	composer.Token = testTokens[httpapi.Composer]
	seed, _ := os.ReadFile(seedTemplates)
	seed = bytes.Replace(seed, []byte(`"PRIORITY"`), []byte(`"AI_AGENT"`), 1)
	for range 2 {
		code, body, _ := submit(t, composer, base, seed, "")
		if code != http.StatusAccepted {
			t.Fatalf("POST = %d %v", code, body)
		}
		id = body["id"].(string)
		if final := waitFinished(t, st, id, 60*time.Second); final.Status != domain.StatusSucceeded {
			t.Fatalf("%s %q", final.Status, final.Error)
		}
	}
	return base, id
}

// browserClient signs in to the dashboard with token, keeping its cookie.
func browserClient(t *testing.T, base, token string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/ui/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("sign in = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return c
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestDashboardPages: every page of the dashboard against a real database
// with seeded history, signed in and not.
func TestDashboardPages(t *testing.T) {
	t.Parallel()
	base, id := dashboardServer(t)
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Not signed in: pages go to the sign-in form, charts are refused, and
	// a token that cannot read the history does not sign in.
	if code, _, h := get(t, anon, base+"/ui/"); code != http.StatusSeeOther || h.Get("Location") != "/ui/login" {
		t.Errorf("/ui/ signed out = %d → %s", code, h.Get("Location"))
	}
	if code, _, _ := get(t, anon, base+"/ui/compositions/"+id); code != http.StatusSeeOther {
		t.Errorf("a plan page signed out = %d", code)
	}
	if code, _, _ := get(t, anon, base+"/ui/charts/success.svg"); code != http.StatusUnauthorized {
		t.Errorf("a chart signed out = %d, want 401", code)
	}
	if code, body, _ := get(t, anon, base+"/ui/login"); code != 200 || !strings.Contains(body, `name="token"`) {
		t.Errorf("/ui/login = %d", code)
	}
	resp, err := anon.PostForm(base+"/ui/login", url.Values{"token": {"not-a-token"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "not one this server accepts") || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("a wrong token = %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}

	c := browserClient(t, base, testTokens[httpapi.Analyst])
	code, body, h := get(t, c, base+"/ui/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("/ui/ = %d", code)
	}
	for _, want := range []string{"Recent compositions", "/ui/compositions/" + id, "Custom Environment (templates only)", "sim-11-",
		"Success rate per strategy", `src="/ui/charts/success.svg?`, "Conflicts per kind and action", "Model versions", "Allocation against observed usage"} {
		if !strings.Contains(body, want) {
			t.Errorf("/ui/ lacks %q", want)
		}
	}
	if code, body, _ := get(t, c, base+"/ui/?strategy=AI_AGENT&source="+url.QueryEscape("template:template_a")); code != 200 || strings.Contains(body, "sim-11-") || !strings.Contains(body, id) {
		t.Errorf("filtered by strategy and source = %d; simulated rows present: %v", code, strings.Contains(body, "sim-11-"))
	}
	if code, body, _ := get(t, c, base+"/ui/?strategy=BEST&from=yesterday"); code != 400 || !strings.Contains(body, "Strategy") || !strings.Contains(body, "From") {
		t.Errorf("bad filters = %d", code)
	}
	code, body, _ = get(t, c, base+"/ui/compositions/"+id)
	if code != 200 {
		t.Fatalf("plan page = %d %s", code, body)
	}
	for _, want := range []string{"Conflicts (7)", "service:db", "AI_AGENT", "margin", "Services", "Stage timings"} {
		if !strings.Contains(body, want) {
			t.Errorf("the plan page lacks %q", want)
		}
	}
	if code, _, _ := get(t, c, base+"/ui/compositions/00000000-0000-0000-0000-000000000000"); code != 404 {
		t.Errorf("an unknown composition = %d, want 404", code)
	}
	for _, chart := range []string{"success", "conflicts"} {
		code, body, h := get(t, c, base+"/ui/charts/"+chart+".svg?from=2000-01-01")
		if code != 200 || h.Get("Content-Type") != "image/svg+xml" || !strings.Contains(body, "<svg") {
			t.Errorf("chart %s = %d %s", chart, code, h.Get("Content-Type"))
		}
	}
	if code, body, _ := get(t, c, base+"/ui/static/style.css"); code != 200 || !strings.Contains(body, "@media") {
		t.Errorf("style.css = %d", code)
	}
}

// chromium finds a Chromium to drive; without one the test is skipped,
// except under CI=true.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: `make test` installs Debian's chromium as root")
	}
	t.Skip("no chromium on PATH")
	return ""
}

// TestDashboardInBrowser drives the dashboard in headless Chromium: sign
// in with the keyboard, follow a composition from the list to its plan,
// check it, at a laptop's width and a phone's, with no console errors; the
// screenshots are kept in $SNAPCOMPOSE_SCREENSHOTS (default: the test's
// temporary directory, logged).
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	path := chromium(t)
	base, id := dashboardServer(t)
	shots := os.Getenv("SNAPCOMPOSE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	var mu sync.Mutex
	var problems []string
	listen := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				problems = append(problems, fmt.Sprintf("console.error: %v", e.Args))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				problems = append(problems, fmt.Sprintf("%s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	if listen != nil {
		t.Fatal(listen)
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(expr string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	text := func(css string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	// Signed out: the form, its field focused; typing the token and Enter
	// signs in. On the overview the first Tab stop is the skip link.
	do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	do(chromedp.SendKeys(chromedp.ID("token"), testTokens[httpapi.Analyst]+"\r"), chromedp.WaitVisible(chromedp.ID("compositions")))
	heading := text("h1")
	do(chromedp.KeyEvent("\t"))
	focused := run(`document.activeElement.className`)
	shot("dashboard.png")
	// From the list into one plan.
	do(chromedp.Click(chromedp.CSS(`a[href="/ui/compositions/`+id+`"]`)), chromedp.WaitVisible(chromedp.ID("conflicts")))
	planText := text("main")
	shot("dashboard-plan.png")
	// A phone's width.
	do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("compositions")))
	overflow := run(`document.documentElement.scrollWidth > window.innerWidth + 1`)
	shot("dashboard-phone.png")
	t.Logf("screenshots in %s", shots)
	if focused != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", focused)
	}
	if heading != "Overview" {
		t.Errorf("after signing in the heading is %q", heading)
	}
	for _, want := range []string{"Custom Environment (templates only)", "Conflicts (7)", "service:db", "Services"} {
		if !strings.Contains(planText, want) {
			t.Errorf("the plan page lacks %q", want)
		}
	}
	if overflow != false {
		t.Errorf("at a phone's width the page scrolls sideways")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the browser reported:\n%s", strings.Join(problems, "\n"))
	}
}
