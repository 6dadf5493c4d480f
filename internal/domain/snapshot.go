package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// Snapshot is what one source contributes to a composition.
type Snapshot struct {
	Source      Source
	Description string
	Tags        []string
	Services    []Service
	Env         []EnvVar // environment-wide variables, destined for the composed .env
	Files       []File
	Volumes     []Volume
	// CapturedAt is when a live source was captured; zero for a template.
	CapturedAt time.Time
}

// Service is one service of a snapshot.
type Service struct {
	Name      string
	Image     string
	Ports     []Port
	DependsOn []string // services this one needs, by name: depends_on, links, volumes_from, network_mode
	Volumes   []string // named volumes it mounts
	Requested Resources
	Minimum   Resources
	Optional  bool
	// LatencySensitive marks a service others wait on in their request path
	// (OpenB QoS class LS; x-snapcompose latency_sensitive): losing it
	// fails what needs it.
	LatencySensitive bool
	// Runtime digests what the service runs (image, command, entrypoint, its
	// own environment, mount targets, ...). Two services with equal Runtime
	// are interchangeable, so one instance can serve both: "share".
	Runtime string
	// Digest covers the whole definition: Runtime plus ports, dependencies,
	// volumes and resources. Two claims on one name with different Digest
	// conflict.
	Digest string
	// RenamedFrom is the name the service had in its source before a rename.
	RenamedFrom string
	// Reads lists the environment-wide keys the service is known to read
	// ("env:NAME", "file:/path"), sorted; nil when unknown. It lets a
	// failure be pinned on the variables and files the service uses.
	Reads []string
	// Definition is the service as its source defines it, as a Compose
	// service (compose-go's ServiceConfig in JSON): what instantiation
	// writes into compose.yaml besides what the plan settles (name, ports,
	// dependencies, resources). Nil when the source gave none.
	Definition []byte
}

// Port is a published port: Host on the machine, Container inside the service.
type Port struct {
	Host      int    `json:"host"`
	Container int    `json:"container"`
	Protocol  string `json:"protocol"` // "tcp" or "udp"
}

// EnvVar is an environment-wide variable. A secret captured from a live host
// arrives as its Digest alone, with an empty Value.
type EnvVar struct {
	Name   string
	Value  string
	Digest string // set when only the digest of the value is known
}

// ValueDigest returns the digest of the value, known or computed.
func (e EnvVar) ValueDigest() string {
	if e.Digest != "" {
		return e.Digest
	}
	return Digest([]byte(e.Value))
}

// Secret reports whether the variable's name marks its value as a secret,
// which plans, logs and the database then carry only as a digest.
func (e EnvVar) Secret() bool { return IsSecretName(e.Name) }

var secretMarkers = []string{"PASSWORD", "PASSWD", "PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH", "CERT", "SALT", "DSN"}

// IsSecretName reports whether a variable name looks like it holds a secret
// (PASSWORD, SECRET, TOKEN, KEY, ... as a word of the name, case-insensitive).
// DATABASE_URL-like names are secrets too: URLs often embed a password.
func IsSecretName(name string) bool {
	upper := strings.ToUpper(name)
	for _, word := range strings.FieldsFunc(upper, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		for _, m := range secretMarkers {
			if word == m || strings.HasSuffix(word, m) || strings.HasPrefix(word, m) {
				return true
			}
		}
		if word == "URL" || word == "URI" {
			if strings.Contains(upper, "DATABASE") || strings.Contains(upper, "DB") || strings.Contains(upper, "REDIS") || strings.Contains(upper, "AMQP") || strings.Contains(upper, "MONGO") {
				return true
			}
		}
	}
	return false
}

// Digest returns "sha256:<hex>" of b, the form every digest in snapcompose takes.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// File is a file a snapshot places in the environment.
type File struct {
	Path   string // absolute, in the environment
	Digest string
	Size   int64
	Mode   uint32
}

// Volume is a named volume a snapshot declares.
type Volume struct {
	Name   string
	Digest string // of its declaration (driver, options, external, labels)
	// Definition is the declaration as a Compose volume (compose-go's
	// VolumeConfig in JSON); nil when the source gave none.
	Definition []byte
}

// DefinitionDigest returns the Digest a service's claim carries: its Runtime
// plus where it is reachable, what it needs and what it gets. Every source
// computes it here, so equal definitions from a template and a live host
// compare equal.
func (s Service) DefinitionDigest() string {
	b, _ := json.Marshal(struct {
		Runtime   string    `json:"runtime"`
		Ports     []Port    `json:"ports"`
		DependsOn []string  `json:"depends_on"`
		Volumes   []string  `json:"volumes"`
		Requested Resources `json:"requested"`
		Minimum   Resources `json:"minimum"`
		Optional  bool      `json:"optional"`
	}{s.Runtime, s.Ports, s.DependsOn, s.Volumes, s.Requested, s.Minimum, s.Optional})
	return Digest(b)
}
