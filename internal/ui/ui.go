// Package ui is the analyst dashboard served at /ui/: server-rendered HTML
// (html/template) over the same history and role checks as the API, with
// charts drawn by package charts. No script runs in the browser.
package ui

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"gonum.org/v1/plot"

	"github.com/snapcompose/snapcompose/internal/charts"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
	"github.com/snapcompose/snapcompose/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Authorize says whether a token may read the history (role analyst or
// above), and names its holder.
type Authorize func(token string) (name string, ok bool)

// cookieName holds the signed-in token.
const cookieName = "snapcompose_ui"

// Dashboard is the /ui/ handler.
type Dashboard struct {
	st     *store.Store
	auth   Authorize
	logger *slog.Logger
	pages  map[string]*template.Template
	router chi.Router
}

// New returns the dashboard, to be mounted at /ui.
func New(st *store.Store, auth Authorize, logger *slog.Logger) (*Dashboard, error) {
	d := &Dashboard{st: st, auth: auth, logger: logger, pages: map[string]*template.Template{}, router: chi.NewRouter()}
	funcs := template.FuncMap{
		"when": when,
		"stage": func(t map[string]int64, s string) string {
			v, ok := t[s]
			return map[bool]string{true: fmt.Sprint(v), false: "–"}[ok]
		},
		"pct":   pct,
		"share": func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
		"score": score,
		"cpu":   func(v any) string { return quantity.FormatCPU(toInt(v)) },
		"bytes": func(v any) string { return quantity.FormatBytes(toInt(v)) },
	}
	for _, page := range []string{"login", "overview", "composition"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		d.pages[page] = t
	}
	static, _ := fs.Sub(staticFS, "static")
	r := d.router
	r.Handle("/static/*", http.StripPrefix("/ui/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	r.Get("/login", d.loginForm)
	r.Post("/login", d.login)
	r.Post("/logout", d.logout)
	r.Group(func(r chi.Router) {
		r.Use(d.signedIn)
		r.Get("/", d.overview)
		r.Get("/compositions/{id}", d.composition)
		r.Get("/charts/success.svg", d.successChart)
		r.Get("/charts/conflicts.svg", d.conflictsChart)
	})
	return d, nil
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.router.ServeHTTP(w, r) }

func cacheFor(age time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(age.Seconds())))
		h.ServeHTTP(w, r)
	})
}

type userKey struct{}

// signedIn admits requests whose cookie holds a token allowed to read the
// history; pages send others to the sign-in form, charts get 401.
func (d *Dashboard) signedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		name, ok := "", false
		if err == nil {
			name, ok = d.auth(c.Value)
		}
		if !ok {
			if strings.HasPrefix(r.URL.Path, "/ui/charts/") {
				http.Error(w, "sign in at /ui/login", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, name)))
	})
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["User"], _ = r.Context().Value(userKey{}).(string)
	var buf bytes.Buffer
	if err := d.pages[page].ExecuteTemplate(&buf, page+".html", data); err != nil {
		d.logger.Error("rendering the dashboard", "page", page, "error", err.Error())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login", map[string]any{"Title": "Sign in"})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	if _, ok := d.auth(token); !ok {
		d.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Title": "Sign in",
			"Error": "That token is not one this server accepts for reading the history (role analyst or above)."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/ui", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// filters are the overview's, as the form shows them and as the store
// takes them.
type filters struct {
	From, To, Strategy, Source string // as given
	from, to                   time.Time
}

// strategies are the strategy filter's choices.
var strategies = func() []string {
	var out []string
	for _, s := range domain.Strategies {
		out = append(out, string(s))
	}
	return out
}()

func readFilters(r *http.Request) (filters, error) {
	q := r.URL.Query()
	f := filters{From: q.Get("from"), To: q.Get("to"), Strategy: q.Get("strategy"), Source: strings.TrimSpace(q.Get("source"))}
	var problems []string
	for _, x := range []struct {
		name, v string
		t       *time.Time
	}{{"From", f.From, &f.from}, {"To", f.To, &f.to}} {
		if x.v == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", x.v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q is not a date such as 2026-11-27", x.name, x.v))
		}
		*x.t = t
	}
	if f.Strategy != "" && !slices.Contains(strategies, f.Strategy) {
		problems = append(problems, fmt.Sprintf("Strategy: %q is not one of %s", f.Strategy, strings.Join(strategies, ", ")))
	}
	if len(problems) > 0 {
		return f, errors.New(strings.Join(problems, "; "))
	}
	return f, nil
}

func (f filters) query() template.URL {
	v := url.Values{}
	for k, s := range map[string]string{"from": f.From, "to": f.To, "strategy": f.Strategy, "source": f.Source} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return template.URL(v.Encode())
}

// modelRow is a model version as the overview lists it.
type modelRow struct {
	store.ModelSummary
	Kind, AUC, LogLoss string
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r)
	if err != nil {
		d.render(w, r, http.StatusBadRequest, "overview", map[string]any{"Title": "Overview", "F": f, "Strategies": strategies,
			"Error": err.Error(), "Summary": store.HistorySummary{}})
		return
	}
	ctx := r.Context()
	hf := store.HistoryFilter{From: f.from, To: f.to, Strategy: domain.Strategy(f.Strategy), Source: f.Source, Limit: 25}
	var comps []store.HistoryComposition
	if _, err := d.st.HistoryCompositions(ctx, hf, func(c store.HistoryComposition) error { comps = append(comps, c); return nil }); err != nil {
		d.fail(w, r, err)
		return
	}
	sum, err := d.st.Summary(ctx, f.from, f.to)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if f.Strategy != "" {
		sum.Strategies = slices.DeleteFunc(sum.Strategies, func(s store.StrategySummary) bool { return s.Strategy != f.Strategy })
	}
	fits, err := d.st.ServiceFits(ctx, f.from, f.to, f.Strategy, f.Source, 50)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var models []modelRow
	for _, m := range sum.Models {
		row := modelRow{ModelSummary: m, AUC: "–", LogLoss: "–"}
		var metrics struct {
			Kind string `json:"kind"`
			Test struct {
				AUC     *float64 `json:"auc"`
				LogLoss *float64 `json:"log_loss"`
			} `json:"test"`
		}
		if json.Unmarshal(m.Metrics, &metrics) == nil {
			row.Kind = metrics.Kind
			if metrics.Test.AUC != nil {
				row.AUC = fmt.Sprintf("%.3f", *metrics.Test.AUC)
			}
			if metrics.Test.LogLoss != nil {
				row.LogLoss = fmt.Sprintf("%.4f", *metrics.Test.LogLoss)
			}
		}
		models = append(models, row)
	}
	d.render(w, r, http.StatusOK, "overview", map[string]any{
		"Title": "Overview", "F": f, "Query": f.query(), "Strategies": strategies,
		"Compositions": comps, "Summary": sum, "Fits": fits, "Models": models,
	})
}

func (d *Dashboard) composition(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	c, err := d.st.GetComposition(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	verdict := ""
	if os, err := d.st.Outcomes(r.Context(), id); err == nil && len(os) > 0 {
		verdict = os[len(os)-1].Verdict
	}
	d.render(w, r, http.StatusOK, "composition", map[string]any{"Title": c.Name, "C": c, "Verdict": verdict})
}

// fail answers an error as a page: 404 and 400 say what, others are logged.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch domain.ErrorCode(err) {
	case domain.ENOTFOUND:
		status = http.StatusNotFound
	case domain.EINVALID:
		status = http.StatusBadRequest
	default:
		d.logger.Error("dashboard", "path", r.URL.Path, "error", err.Error())
		err = errors.New("the history could not be read; the server's log says why")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, domain.ErrorMessage(err))
}

func (d *Dashboard) successChart(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	days, err := d.st.OutcomesByDay(r.Context(), f.from, f.to, f.Strategy)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	by := map[string]*charts.Series{}
	var names []string
	for _, day := range days {
		if day.Finished == 0 {
			continue
		}
		s := by[day.Strategy]
		if s == nil {
			s = &charts.Series{Name: day.Strategy}
			by[day.Strategy] = s
			names = append(names, day.Strategy)
		}
		s.Points = append(s.Points, charts.TimePoint{At: day.Day, Value: float64(day.Succeeded) / float64(day.Finished)})
	}
	slices.Sort(names)
	var series []charts.Series
	for _, n := range names {
		series = append(series, *by[n])
	}
	if len(series) == 0 {
		d.svg(w, charts.Empty("Success rate per strategy", "no finished compositions in this window"))
		return
	}
	p, err := charts.Lines("Success rate per strategy", "succeeded of finished (%)", series, true)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.svg(w, p)
}

func (d *Dashboard) conflictsChart(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum, err := d.st.Summary(r.Context(), f.from, f.to)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var bars []charts.Bar
	for _, c := range sum.Conflicts {
		bars = append(bars, charts.Bar{Label: c.Kind + "/" + c.Action, Value: float64(c.Conflicts)})
	}
	slices.SortStableFunc(bars, func(a, b charts.Bar) int { return cmp.Compare(b.Value, a.Value) })
	if len(bars) > 10 {
		bars = bars[:10]
	}
	if len(bars) == 0 {
		d.svg(w, charts.Empty("Conflicts per kind and action", "no conflicts in this window"))
		return
	}
	p, err := charts.Bars("Conflicts per kind and action (top 10)", "conflicts", bars, "", 0, false)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.svg(w, p)
}

func (d *Dashboard) svg(w http.ResponseWriter, p *plot.Plot) {
	var buf bytes.Buffer
	if err := charts.WriteSVG(&buf, p, charts.Width, charts.Height); err != nil {
		d.logger.Error("drawing a chart", "error", err.Error())
		http.Error(w, "the chart could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "private, max-age=60")
	w.Write(buf.Bytes())
}

func when(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format("2006-01-02 15:04:05")
	case *time.Time:
		if t != nil {
			return t.UTC().Format("2006-01-02 15:04:05")
		}
	}
	return "–"
}

// stage shows a stage's milliseconds, or a dash when it has none.
func stage(timings map[string]int64, name string) string {
	if v, ok := timings[name]; ok {
		return fmt.Sprint(v)
	}
	return "–"
}

func pct(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100**v)
}

func score(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.3f", *v)
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	case float64:
		return int64(x + 0.5)
	}
	return 0
}
