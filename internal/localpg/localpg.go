// Package localpg runs a private PostgreSQL cluster under a directory, for
// `make run` and `make test` on a machine where DATABASE_URL is not set. It
// uses the machine's own Postgres binaries; as root, which initdb and
// postgres refuse, it runs them as the postgres user.
package localpg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// Database is the database the cluster serves snapcompose from.
const Database = "snapcompose"

const superuser = "snapcompose"

// Options tune a cluster.
type Options struct {
	// Ephemeral trades durability for speed (fsync off), for test clusters.
	Ephemeral bool
	// BinDir holds initdb, pg_ctl and postgres; empty finds them.
	BinDir string
	// Port is the loopback port to listen on when the cluster is not
	// running yet; 0 picks a free one. A cluster restarted on its old port
	// lets its clients reconnect.
	Port int
}

// Cluster is a running private Postgres.
type Cluster struct {
	dir     string
	binDir  string
	port    int
	url     string
	started bool // by us, so Stop stops it
	cred    *syscall.Credential
}

// URL returns the connection URL. It holds the cluster's password: pass it
// on, never log it.
func (c *Cluster) URL() string { return c.url }

// Port returns the loopback port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// Started reports whether this process started the cluster (rather than
// finding it already running).
func (c *Cluster) Started() bool { return c.started }

// FindBinaries returns the directory of the newest Postgres server binaries
// on the machine. It returns EUNAVAILABLE, saying how to install them, when
// there are none.
func FindBinaries() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return pgVersion(versions[i]) > pgVersion(versions[j]) })
	candidates = append(candidates, versions...)
	candidates = append(candidates, "/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin", "/usr/bin")
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", domain.Errorf(domain.EUNAVAILABLE,
		"no PostgreSQL server binaries (initdb, pg_ctl) found: install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) or set DATABASE_URL to a database you run")
}

func pgVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start starts the cluster under dir, creating it on first use, and waits
// until it accepts connections. If a cluster is already running there it is
// reused, and Stop leaves it running.
func Start(ctx context.Context, dir string, opts Options) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	c := &Cluster{dir: abs, binDir: opts.BinDir}
	if c.binDir == "" {
		if c.binDir, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	if err := c.prepareOwner(); err != nil {
		return nil, err
	}
	// Directories made here must let the postgres user through (o+x) when
	// the cluster runs as that user; the cluster's own stays private.
	if err := os.MkdirAll(filepath.Dir(abs), 0o711); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", filepath.Dir(abs), err)
	}
	if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating data directory %s: %w", abs, err)
	}
	if err := c.chown(abs); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx, opts); err != nil {
			return nil, err
		}
	}
	password, err := os.ReadFile(filepath.Join(abs, "password"))
	if err != nil {
		return nil, fmt.Errorf("reading the cluster password in %s: %w", abs, err)
	}
	if port, ok := c.runningPort(ctx); ok {
		c.port = port
	} else {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err := c.pgctl(ctx, "start", "-w", "-t", "60", "-l", filepath.Join(abs, "postgres.log"),
			"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=''", c.port)); err != nil {
			return nil, fmt.Errorf("starting Postgres in %s (see %s): %w", abs, filepath.Join(abs, "postgres.log"), err)
		}
		c.started = true
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(superuser, strings.TrimSpace(string(password))),
		Host: fmt.Sprintf("127.0.0.1:%d", c.port), Path: "/" + Database, RawQuery: "sslmode=disable"}
	c.url = u.String()
	if err := c.ensureDatabase(ctx, u); err != nil {
		c.Stop(context.Background())
		return nil, err
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// prepareOwner arranges for the binaries to run as the postgres user when
// this process is root.
func (c *Cluster) prepareOwner() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return domain.Errorf(domain.EUNAVAILABLE, "running as root, and Postgres refuses root: a postgres user is needed (the postgresql package creates it), or set DATABASE_URL")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("handing %s to the postgres user: %w", path, err)
	}
	// The postgres user must be able to reach the directory.
	for p := filepath.Dir(path); p != "/"; p = filepath.Dir(p) {
		if !c.searchable(p) {
			return domain.Errorf(domain.EUNAVAILABLE, "the postgres user cannot reach %s: it may not enter %s (chmod o+x it, or choose another data directory)", path, p)
		}
	}
	return nil
}

// searchable reports whether the postgres user may enter directory p.
func (c *Cluster) searchable(p string) bool {
	fi, err := os.Stat(p)
	if err != nil {
		return false
	}
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case mode&0o001 != 0:
		return true
	case ok && st.Uid == c.cred.Uid:
		return mode&0o100 != 0
	case ok && st.Gid == c.cred.Gid:
		return mode&0o010 != 0
	}
	return false
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// Keep the server out of our process group, so a Ctrl-C meant for us
	// does not reach it before we stop it cleanly.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return cmd
}

func (c *Cluster) run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context, opts Options) error {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	password := hex.EncodeToString(buf)
	pwfile := filepath.Join(c.dir, "password")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the cluster password: %w", err)
	}
	if err := c.chown(pwfile); err != nil {
		return err
	}
	if err := c.run(c.command(ctx, "initdb", "-D", c.dataDir(), "-U", superuser, "--pwfile", pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions")); err != nil {
		os.RemoveAll(c.dataDir())
		return fmt.Errorf("creating a Postgres cluster in %s: %w", c.dataDir(), err)
	}
	if opts.Ephemeral {
		conf := "\n# snapcompose test cluster: speed over durability\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n"
		f, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString(conf); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) error {
	return c.run(c.command(ctx, "pg_ctl", append([]string{"-D", c.dataDir()}, args...)...))
}

// runningPort reports the port of a cluster already running in the directory.
func (c *Cluster) runningPort(ctx context.Context) (int, bool) {
	if c.pgctl(ctx, "status") != nil {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil
}

func (c *Cluster) ensureDatabase(ctx context.Context, u url.URL) error {
	admin := u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connecting to the local cluster on port %d: %w", c.port, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+Database); err != nil {
			return fmt.Errorf("creating database %s: %w", Database, err)
		}
	}
	return nil
}

// Stop stops the cluster if this process started it.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.started {
		return nil
	}
	c.started = false
	return c.pgctl(ctx, "stop", "-m", "fast", "-w", "-t", "60")
}

// StopDir stops whatever cluster runs under dir.
func StopDir(ctx context.Context, dir string) error {
	c := &Cluster{dir: dir}
	var err error
	if c.dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if c.binDir, err = FindBinaries(); err != nil {
		return err
	}
	if err := c.prepareOwner(); err != nil {
		return err
	}
	if _, ok := c.runningPort(ctx); !ok {
		return nil
	}
	return c.pgctl(ctx, "stop", "-m", "fast", "-w", "-t", "60")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
