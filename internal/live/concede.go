package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

// maxRecommendationBytes bounds the JSON of an agent's recommendations: a
// few hundred bytes per service.
const maxRecommendationBytes = 4 << 20

// Concede asks the agent of src's host for its usage-based recommendation
// of the services under src's path (GET /v1/recommend) and offers, for each
// of services the agent recommends, its recommended minimum CPU and memory:
// a percentile of the service's real use plus a margin (see snapagent).
// Disk is not negotiable: the captured files are carried whole. A service
// the agent does not recommend gets no offer. Errors are as for Retrieve.
func (s *Source) Concede(ctx context.Context, src domain.Source, services []string) ([]domain.Offer, error) {
	if src.Type != domain.LiveSource {
		return nil, domain.Errorf(domain.EINVALID, "the live source cannot negotiate for %s source %s", src.Type, src.Ref())
	}
	h, err := s.host(src.Host)
	if err != nil {
		return nil, err
	}
	req := request{host: h, path: src.Path, what: fmt.Sprintf("asking host %q for a recommendation for %s", src.Host, src.Path)}
	ctx, cancel := withTimeout(ctx, h.Timeout)
	defer cancel()
	u := h.Endpoint("/v1/recommend")
	u.RawQuery = url.Values{"path": {onAgent(h.RootFS, src.Path)}}.Encode()
	resp, err := s.do(ctx, req, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, s.status(req, resp)
	}
	var recs []agentapi.Recommendation
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxRecommendationBytes+1))
	if err := dec.Decode(&recs); err != nil {
		if ctx.Err() != nil {
			return nil, req.fail(true, "the agent at %s did not finish its recommendation in time", h.URL.Redacted())
		}
		return nil, req.fail(false, "the agent at %s sent a recommendation that cannot be decoded (at most %d bytes of a JSON array): %v", h.URL.Redacted(), maxRecommendationBytes, err)
	}
	if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
		return nil, req.fail(false, "the agent at %s sent data after its recommendation", h.URL.Redacted())
	}
	byService, err := recommendationsByService(recs)
	if err != nil {
		return nil, req.fail(false, "the agent at %s sent a recommendation snapcompose cannot use: %v", h.URL.Redacted(), err)
	}
	var offers []domain.Offer
	for _, name := range services {
		rec := byService[name]
		if rec == nil {
			continue
		}
		offers = append(offers, domain.Offer{
			Service: name,
			Minimum: domain.Resources{CPUMillicores: rec.MinCPUMillicores, MemoryBytes: rec.MinMemoryBytes, DiskBytes: math.MaxInt64},
			Basis: fmt.Sprintf("the agent on %s recommends at least %s CPU and %s memory (%s)", src.Host,
				quantity.FormatCPU(rec.MinCPUMillicores), quantity.FormatBytes(rec.MinMemoryBytes), sanitize(truncate(rec.Basis, 300))),
		})
	}
	return offers, nil
}
