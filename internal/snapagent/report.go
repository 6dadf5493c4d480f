package snapagent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

// ReportConfig makes an agent push the usage of the services it watches to
// a snapcompose server, as the monitoring of a composition running on its
// host.
type ReportConfig struct {
	// URL is the server's base URL (http://host:8080).
	URL string
	// Token is a bearer token with the composer role.
	Token string
	// Composition is the id of the composition whose services this host
	// runs; each watched service is reported under its name.
	Composition string
	// Every is how often new samples are pushed.
	Every  time.Duration
	Client *http.Client // nil: a client with a 30s timeout
}

// Report pushes, every rc.Every until ctx ends, each watched service's
// samples taken since its last push. A service the composition does not
// have (the server answers 400 naming it) is left out from then on, said
// once in the log; a failed push is retried with the next.
func (a *Agent) Report(ctx context.Context, rc ReportConfig) error {
	base, err := url.Parse(strings.TrimRight(rc.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("report URL %q: want http(s)://host[:port]", rc.URL)
	}
	client := rc.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	endpoint := base.String() + "/v1/compositions/" + url.PathEscape(rc.Composition) + "/usage"
	pushed := map[string]time.Time{} // service -> the last sample pushed
	refused := map[string]bool{}
	ticker := time.NewTicker(rc.Every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		for _, service := range a.history.names() {
			if refused[service] {
				continue
			}
			var fresh []agentapi.UsageSample
			for _, s := range a.history.samples(service) {
				if s.At.After(pushed[service]) {
					fresh = append(fresh, s)
				}
			}
			if len(fresh) == 0 {
				continue
			}
			status, msg, err := a.push(ctx, client, endpoint, rc.Token, agentapi.UsageReport{
				Service: service, Host: a.cfg.Hostname, IntervalSeconds: max(int(a.cfg.SampleInterval.Seconds()), 1), Samples: fresh,
			})
			switch {
			case err != nil:
				a.log.Warn("reporting usage", "service", service, "error", err.Error())
			case status == http.StatusOK:
				pushed[service] = fresh[len(fresh)-1].At
			case status == http.StatusBadRequest:
				refused[service] = true
				a.log.Info("not reporting a service the composition does not have", "service", service, "composition", rc.Composition, "answer", msg)
			default:
				a.log.Warn("reporting usage", "service", service, "status", status, "answer", msg)
			}
		}
	}
}

func (a *Agent) push(ctx context.Context, client *http.Client, endpoint, token string, r agentapi.UsageReport) (int, string, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// names lists the services with samples, sorted.
func (h *history) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.series))
	for name := range h.series {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
