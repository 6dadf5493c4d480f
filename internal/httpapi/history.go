package httpapi

import (
	"context"
	"encoding/csv"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

// History is the history for analysts (a *store.Store).
type History interface {
	HistoryCompositions(ctx context.Context, f store.HistoryFilter, each func(store.HistoryComposition) error) (string, error)
	HistoryConflicts(ctx context.Context, f store.HistoryFilter, each func(store.HistoryConflict) error) (string, error)
	Summary(ctx context.Context, from, to time.Time) (store.HistorySummary, error)
}

var _ History = (*store.Store)(nil)

// Accepted filter values, for messages.
var (
	strategyNames = names(domain.Strategies)
	statusNames   = []string{"pending", "running", "planned", "provisioning", "provisioned", "instantiated", "succeeded", "failed", "cancelled"}
	verdictNames  = []string{"healthy", "degraded", "failed", "none"}
	kindNames     = names(domain.ClaimKinds)
	actionNames   = []string{"keep", "remap", "rename", "share", "merge", "drop", "allocate"}
)

func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// historyFilter reads the filters of a history request, naming each bad
// one and what it accepts.
func historyFilter(r *http.Request) (store.HistoryFilter, error) {
	q := r.URL.Query()
	var f store.HistoryFilter
	var problems []domain.Problem
	for name, t := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				problems = append(problems, domain.Problem{Where: name, Message: fmt.Sprintf("%q is not an RFC 3339 time such as 2026-11-27T00:00:00Z", v)})
			}
		}
	}
	oneOf := func(name string, accepted []string) string {
		v := q.Get(name)
		if v != "" && !slices.Contains(accepted, v) {
			problems = append(problems, domain.Problem{Where: name, Message: fmt.Sprintf("%q: want one of %s", v, strings.Join(accepted, ", "))})
		}
		return v
	}
	f.Strategy = domain.Strategy(oneOf("strategy", strategyNames))
	f.Status = domain.CompositionStatus(oneOf("status", statusNames))
	f.Verdict = oneOf("outcome", verdictNames)
	f.Kind = domain.ClaimKind(oneOf("kind", kindNames))
	f.Action = domain.Action(oneOf("action", actionNames))
	f.Source = q.Get("source")
	f.Cursor = q.Get("cursor")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageSize {
			problems = append(problems, domain.Problem{Where: "limit", Message: fmt.Sprintf("%q: want a number from 1 to %d", v, store.MaxPageSize)})
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		return f, domain.Invalid("invalid history query", problems)
	}
	return f, nil
}

// wantsCSV reports whether the client asked for CSV.
func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true
		}
	}
	return false
}

type csvRow interface {
	CSVHeader() []string
	CSVRecord() []string
}

// serveHistory answers a history listing: a JSON page, or with Accept:
// text/csv every matching row, streamed.
func serveHistory[R csvRow](s *Server, w http.ResponseWriter, r *http.Request, name string,
	list func(context.Context, store.HistoryFilter, func(R) error) (string, error)) {
	f, err := historyFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !wantsCSV(r) {
		rows := []R{}
		next, err := list(r.Context(), f, func(row R) error { rows = append(rows, row); return nil })
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		page := map[string]any{name: rows}
		if next != "" {
			page["next_cursor"] = next
		}
		writeJSON(w, http.StatusOK, page)
		return
	}
	// An export: every row, no page. The header goes out with the first
	// row, so an error before it is still an error status.
	f.Limit, f.Cursor = -1, ""
	cw := csv.NewWriter(w)
	started := false
	start := func() {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		w.WriteHeader(http.StatusOK)
		var zero R
		cw.Write(zero.CSVHeader())
		started = true
	}
	n := 0
	_, err = list(r.Context(), f, func(row R) error {
		if !started {
			start()
		}
		if err := cw.Write(row.CSVRecord()); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			cw.Flush()
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
		}
		return cw.Error()
	})
	if err != nil && !started {
		s.writeError(w, r, err)
		return
	}
	if err != nil {
		// Too late for a status: cut the export short so that it does not
		// pass for a whole one.
		s.Logger.Error("history export cut short", "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	if !started {
		start()
	}
	cw.Flush()
}

func (s *Server) historyCompositions(w http.ResponseWriter, r *http.Request) {
	serveHistory(s, w, r, "compositions", s.History.HistoryCompositions)
}

func (s *Server) historyConflicts(w http.ResponseWriter, r *http.Request) {
	serveHistory(s, w, r, "conflicts", s.History.HistoryConflicts)
}

func (s *Server) historySummary(w http.ResponseWriter, r *http.Request) {
	f, err := historyFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum, err := s.History.Summary(r.Context(), f.From, f.To)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}
