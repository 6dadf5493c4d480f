package composer

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// claim is a domain.Claim with the snapshot it came from.
type claim struct {
	domain.Claim
	snap int
}

// Claims returns every claim of one kind the composition holds now, sorted by
// key and then by manifest order.
func (c *Composition) Claims(kind domain.ClaimKind) []domain.Claim {
	cl := c.claims(kind)
	out := make([]domain.Claim, len(cl))
	for i := range cl {
		out[i] = cl[i].Claim
	}
	return out
}

func (c *Composition) claims(kind domain.ClaimKind) []claim {
	var out []claim
	add := func(snap int, key, owner, content string) {
		out = append(out, claim{domain.Claim{Kind: kind, Key: key, Source: c.ref(snap), Owner: owner, Content: content}, snap})
	}
	for si, s := range c.snaps {
		switch kind {
		case domain.ServiceClaim:
			for _, svc := range s.Services {
				add(si, "service:"+svc.Name, svc.Name, svc.Digest)
			}
		case domain.PortClaim:
			for _, svc := range s.Services {
				for _, p := range svc.Ports {
					add(si, portKey(p.Protocol, p.Host), svc.Name, svc.Name+"->"+p.Protocol+"/"+strconv.Itoa(p.Container))
				}
			}
		case domain.EnvClaim:
			for _, e := range s.Env {
				add(si, "env:"+e.Name, "", e.ValueDigest())
			}
		case domain.FileClaim:
			for _, f := range s.Files {
				add(si, "file:"+f.Path, "", f.Digest)
			}
		case domain.VolumeClaim:
			for _, v := range s.Volumes {
				users := volumeUsers(s, v.Name)
				if len(users) == 0 {
					continue // nothing of this source mounts it any more
				}
				// Two sources' volumes of one name hold the same data only if
				// they are declared alike and mounted by the same services.
				content := v.Digest
				for _, u := range users {
					content += "|" + u.Digest
				}
				add(si, "volume:"+v.Name, joinNames(users), domain.Digest([]byte(content)))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].snap < out[j].snap
	})
	return out
}

func volumeUsers(s *domain.Snapshot, volume string) []domain.Service {
	var users []domain.Service
	for _, svc := range s.Services {
		if slices.Contains(svc.Volumes, volume) {
			users = append(users, svc)
		}
	}
	return users
}

func joinNames(svcs []domain.Service) string {
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// groups splits sorted claims into runs of one key held by two or more sources.
func groups(cl []claim) [][]claim {
	var out [][]claim
	for i := 0; i < len(cl); {
		j := i + 1
		for j < len(cl) && cl[j].Key == cl[i].Key {
			j++
		}
		if g := cl[i:j]; distinctSources(g) > 1 {
			out = append(out, g)
		}
		i = j
	}
	return out
}

func distinctSources(g []claim) int {
	n := 0
	for i := range g {
		if i == 0 || g[i].snap != g[i-1].snap {
			n++
		}
	}
	return n
}

func sameContent(g []claim) bool {
	for _, x := range g[1:] {
		if x.Content != g[0].Content {
			return false
		}
	}
	return true
}
