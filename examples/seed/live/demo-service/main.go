// Command demo-service is the live process of `make demo`: a stand-in for
// the orders API that production_server_1 runs from /var/app. `make demo`
// builds it into examples/seed/live/var/app/bin/api and starts it there, so
// snapagent finds a process running from under the captured path, listening
// on 127.0.0.1:9090 — the port template_a's api also publishes — with
// LOG_LEVEL and ORDERS_API_TOKEN in its environment.
//
// It only reads its tree (the exports under data/), so a capture of the tree
// is the same before and after a demo.
package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "`address` to listen on")
	flag.Parse()

	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	token := os.Getenv("ORDERS_API_TOKEN")
	if token == "" {
		log.Warn("ORDERS_API_TOKEN is not set: /api/v1/orders refuses every request")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>orders api</title><h1>orders api</h1><p>The demo's live service: see <code>make demo</code>.</p>\n")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /api/v1/orders/count", func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		n, err := countOrders(filepath.Join("data", "exports"))
		if err != nil {
			log.Error("counting orders", "error", err)
			http.Error(w, "cannot read the exports", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "{\"orders\": %d}\n", n)
	})

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serving", "error", err)
		os.Exit(1)
	}
}

// countOrders counts the data rows of the order exports in dir.
func countOrders(dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "orders-*.csv"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			n++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return 0, err
		}
		n-- // the header
	}
	return n, nil
}
