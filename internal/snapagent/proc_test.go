package snapagent

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agentapi"
	"github.com/snapcompose/snapcompose/internal/domain"
)

// startChild starts a long-running process in dir with extra environment,
// and kills it when the test ends.
func startChild(t *testing.T, dir string, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until it runs in dir: until exec has happened, /proc shows the
	// test binary.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); exe != "" && !strings.HasSuffix(exe, ".test") {
			return cmd
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s did not start", name)
	return nil
}

// TestCaptureProcessesRedactsSecrets runs processes from inside the
// captured tree with a password in their environment and command line:
// the capture shows them, but the password only as a digest.
func TestCaptureProcessesRedactsSecrets(t *testing.T) {
	t.Parallel()
	e := setup(t)
	app := e.root + "/app"
	write(t, app+"/run.sh", "#!/bin/sh\n")
	env := []string{"DB_PASSWORD=hunter2", "APP_MODE=production", "BACKEND=postgres://app:hunter2@db:5432/app"}
	sleep := startChild(t, app, env, "sleep", "30")
	shell := startChild(t, app, env, "/bin/sh", "-c", "sleep 30; :", "sh", "--db-password=hunter2", "--api-token", "hunter2")

	c, body := e.capture(t, app)
	if bytes.Contains(body, []byte("hunter2")) {
		t.Fatalf("the secret appears in the capture:\n%s", body)
	}
	procs := map[int]agentapi.Process{}
	for _, p := range c.Processes {
		procs[p.PID] = p
	}
	p, ok := procs[sleep.Process.Pid]
	if !ok {
		t.Fatalf("sleep (pid %d) not captured; processes: %+v", sleep.Process.Pid, c.Processes)
	}
	if p.Service != "sleep" || p.Name != "sleep" || p.Cwd != app || !slices.Equal(p.Cmdline, []string{"sleep", "30"}) {
		t.Errorf("sleep process = %+v", p)
	}
	if p.MemoryBytes <= 0 {
		t.Errorf("sleep memory = %d", p.MemoryBytes)
	}
	vars := map[string]agentapi.EnvVar{}
	for _, v := range p.Env {
		vars[v.Name] = v
	}
	if v := vars["DB_PASSWORD"]; v.Value != nil || v.Digest != domain.Digest([]byte("hunter2")) {
		t.Errorf("DB_PASSWORD = %+v, want only the digest of its value", v)
	}
	if v := vars["BACKEND"]; v.Value != nil || v.Digest == "" {
		t.Errorf("BACKEND, a URL with a password, = %+v, want only a digest", v)
	}
	if v := vars["APP_MODE"]; v.Value == nil || *v.Value != "production" || v.Digest != "" {
		t.Errorf("APP_MODE = %+v, want its value", v)
	}
	sh, ok := procs[shell.Process.Pid]
	if !ok {
		t.Fatalf("sh not captured")
	}
	redactedPassword := "<redacted " + domain.Digest([]byte("hunter2")) + ">"
	wantCmdline := []string{"/bin/sh", "-c", "sleep 30; :", "sh", "--db-password=" + redactedPassword, "--api-token", redactedPassword}
	if !slices.Equal(sh.Cmdline, wantCmdline) {
		t.Errorf("sh cmdline = %q, want %q", sh.Cmdline, wantCmdline)
	}
	// Two sleeps, one service: same command, executable and directory.
	var services []string
	for _, u := range c.Usage {
		services = append(services, u.Service)
	}
	if !slices.Contains(services, "sleep") || !slices.Contains(services, "sh") {
		t.Errorf("usage series for services %v, want sh and sleep", services)
	}
	for _, r := range c.Recommendations {
		if r.MinCPUMillicores < cpuFloorMillicores || r.MinMemoryBytes < memoryFloorBytes || !strings.Contains(r.Basis, "no usage history") {
			t.Errorf("recommendation without history = %+v", r)
		}
	}
}

// TestCapturePorts opens listening sockets in the test process, which a
// ServiceMatch on the test binary brings into the capture, and a child
// that listens from inside the tree.
func TestCapturePorts(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, func(c *Config) {
		c.Services = []ServiceMatch{{Name: "Agent Test", ExeGlob: exe}}
	})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	// Neither a connection nor a connected UDP socket is a listener.
	conn, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connected, err := net.Dial("udp", udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	var tcp6Port int
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer ln6.Close()
		tcp6Port = ln6.Addr().(*net.TCPAddr).Port
	}

	c, _ := e.capture(t, e.root)
	pid := os.Getpid()
	has := func(protocol, addr string, port int) bool {
		for _, p := range c.Ports {
			if p.Protocol == protocol && p.Address == addr && p.Port == port {
				if p.PID != pid || p.Service != "agent-test" {
					t.Errorf("port %s/%d owned by pid %d service %q, want %d agent-test", protocol, port, p.PID, p.Service, pid)
				}
				return true
			}
		}
		return false
	}
	if !has("tcp", "127.0.0.1", tcp.Addr().(*net.TCPAddr).Port) {
		t.Errorf("TCP listener missing from %+v", c.Ports)
	}
	if !has("udp", "127.0.0.1", udp.LocalAddr().(*net.UDPAddr).Port) {
		t.Errorf("UDP socket missing from %+v", c.Ports)
	}
	if tcp6Port != 0 && !has("tcp", "::1", tcp6Port) {
		t.Errorf("TCP6 listener missing from %+v", c.Ports)
	}
	for _, p := range c.Ports {
		if p.Port == conn.LocalAddr().(*net.TCPAddr).Port || p.Port == connected.LocalAddr().(*net.UDPAddr).Port {
			t.Errorf("a connected socket is listed as listening: %+v", p)
		}
	}
	if !slices.ContainsFunc(c.Processes, func(p agentapi.Process) bool { return p.PID == pid && p.Service == "agent-test" }) {
		t.Errorf("the matched test process is not among the processes")
	}
}

// TestCapturePortsOfChild captures a listener a process running from the
// tree opens: the test binary itself, re-run from inside the root.
func TestCapturePortsOfChild(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is needed to run a listening child")
	}
	e := setup(t)
	app := e.root + "/web"
	write(t, app+"/server.py", "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\ntime.sleep(30)\n")
	cmd := exec.Command(python, "server.py")
	cmd.Dir = app
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 16)
	n, err := out.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.capture(t, app)
	want := agentapi.Port{Protocol: "tcp", Address: "127.0.0.1", Port: port, PID: cmd.Process.Pid, Service: "python3"}
	if !slices.Contains(c.Ports, want) {
		t.Errorf("ports = %+v, want %+v", c.Ports, want)
	}
	if len(c.Files) != 1 || c.Files[0].Path != app+"/server.py" {
		t.Errorf("files = %+v", c.Files)
	}
}

// fakeProc builds a /proc-like tree for parsing tests.
type fakeProc struct {
	t    *testing.T
	root string
}

func (f fakeProc) process(pid int, comm, exe, cwd string, ticks uint64, rssKB int, cgroup string, env ...string) {
	dir := filepath.Join(f.root, strconv.Itoa(pid))
	mkdir(f.t, dir+"/fd")
	symlink(f.t, exe, dir+"/exe")
	symlink(f.t, cwd, dir+"/cwd")
	write(f.t, dir+"/cmdline", exe+"\x00--serve\x00")
	f.stat(pid, comm, ticks)
	write(f.t, dir+"/status", fmt.Sprintf("Name:\t%s\nVmPeak:\t 9999 kB\nVmRSS:\t %d kB\nThreads:\t1\n", comm, rssKB))
	write(f.t, dir+"/cgroup", "0::"+cgroup+"\n")
	write(f.t, dir+"/environ", strings.Join(env, "\x00")+"\x00")
}

// stat writes /proc/[pid]/stat with utime+stime = ticks, starttime 4242,
// and a command name with the characters that make parsing hard.
func (f fakeProc) stat(pid int, comm string, ticks uint64) {
	fields := make([]string, 50)
	for i := range fields {
		fields[i] = "0"
	}
	fields[0] = "S"
	fields[14-3] = strconv.FormatUint(ticks/2, 10)
	fields[15-3] = strconv.FormatUint(ticks-ticks/2, 10)
	fields[22-3] = "4242"
	write(f.t, filepath.Join(f.root, strconv.Itoa(pid), "stat"), fmt.Sprintf("%d (%s) %s\n", pid, comm, strings.Join(fields, " ")))
}

// TestFakeProc exercises process discovery, grouping, cgroup accounting
// and socket ownership on a fake /proc and cgroup tree.
func TestFakeProc(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	procRoot, cgRoot := base+"/proc", base+"/cgroup"
	root := base + "/srv"
	mkdir(t, root+"/app")
	mkdir(t, root+"/other")
	f := fakeProc{t: t, root: procRoot}
	// Two workers of one server in a shared (non-dedicated) cgroup.
	f.process(101, "gunicorn", "/usr/bin/python3", root+"/app", 100, 1000, "/user.slice", "PORT=8000")
	f.process(102, "gunicorn", "/usr/bin/python3", root+"/app", 300, 2000, "/user.slice")
	// A worker from another directory: same command, another service.
	f.process(103, "gunicorn", "/usr/bin/python3", root+"/other", 0, 500, "/user.slice")
	// A process alone in its cgroup, with a name that needs cleaning.
	f.process(104, "Web (main) x", root+"/app/bin/web", "/", 0, 100, "/app.slice/web.service")
	// A process outside the roots, matched by name, and one not matched.
	f.process(105, "postgres", "/usr/lib/postgresql/16/bin/postgres", "/var/lib/postgresql", 0, 4000, "/system.slice/postgresql.service")
	f.process(106, "bash", "/usr/bin/bash", "/root", 0, 100, "/user.slice")
	mkdir(t, procRoot+"/self")
	write(t, procRoot+"/uptime", "1.0 1.0\n")

	cg := cgRoot + "/app.slice/web.service"
	write(t, cg+"/cpu.stat", "usage_usec 1000000\nuser_usec 600000\nsystem_usec 400000\n")
	write(t, cg+"/memory.current", "52428800\n")
	write(t, cg+"/cgroup.procs", "104\n")
	pg := cgRoot + "/system.slice/postgresql.service"
	write(t, pg+"/cpu.stat", "usage_usec 0\n")
	write(t, pg+"/memory.current", "1000\n")
	write(t, pg+"/cgroup.procs", "105\n999\n") // shared with a process the agent does not watch

	// Sockets: 101 and 102 share a listener (inherited), 104 listens on
	// UDP and has a connected TCP socket.
	symlink(t, "socket:[7001]", procRoot+"/101/fd/3")
	symlink(t, "socket:[7001]", procRoot+"/102/fd/3")
	symlink(t, "pipe:[9]", procRoot+"/102/fd/4")
	symlink(t, "socket:[7002]", procRoot+"/104/fd/5")
	symlink(t, "socket:[7003]", procRoot+"/104/fd/6")
	symlink(t, "socket:[7004]", procRoot+"/106/fd/3")
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	write(t, procRoot+"/net/tcp", header+
		"   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7001 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 0100007F:9C40 0100007F:1F40 01 00000000:00000000 00:00000000 00000000     0        0 7003 1 0000000000000000 100 0 0 10 0\n"+
		"   2: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7004 1 0000000000000000 100 0 0 10 0\n")
	write(t, procRoot+"/net/tcp6", header)
	write(t, procRoot+"/net/udp", header+
		"  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7002 2 0000000000000000 0\n")
	write(t, procRoot+"/net/udp6", header+
		"  11: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7005 2 0000000000000000 0\n")

	a, err := New(Config{
		Roots:      []string{root},
		Token:      testToken,
		Hostname:   "fake",
		ProcRoot:   procRoot,
		CgroupRoot: cgRoot,
		Services:   []ServiceMatch{{Name: "postgres", ExeGlob: "postgres"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := a.scanProcesses()
	if err != nil {
		t.Fatal(err)
	}
	services := map[int]string{}
	for _, p := range procs {
		services[p.pid] = p.service
	}
	wantServices := map[int]string{101: "gunicorn", 102: "gunicorn", 103: "gunicorn-2", 104: "web-main-x", 105: "postgres"}
	if fmt.Sprint(services) != fmt.Sprint(wantServices) {
		t.Errorf("services = %v, want %v", services, wantServices)
	}

	tgt, err := a.resolve(root + "/app")
	if err != nil {
		t.Fatal(err)
	}
	capturedProcs := captured(procs, tgt)
	var pids []int
	for _, p := range capturedProcs {
		pids = append(pids, p.pid)
	}
	if !slices.Equal(pids, []int{101, 102, 104, 105}) {
		t.Errorf("captured pids = %v, want 101 102 104 105", pids)
	}

	before := a.measure(capturedProcs)
	// One second later: the workers used 50 and 100 ticks (0.5 and 1 core),
	// the web service's cgroup 250ms (a quarter core).
	f.stat(101, "gunicorn", 150)
	f.stat(102, "gunicorn", 400)
	write(t, cg+"/cpu.stat", "usage_usec 1250000\n")
	write(t, pg+"/cpu.stat", "usage_usec 500000\n")
	after := a.measure(capturedProcs)
	after.at = before.at.Add(time.Second)
	perPID, perService := usageOf(capturedProcs, before, after)
	checkUsage := func(what string, got usage, cpu, mem int64) {
		t.Helper()
		if got.cpuMillicores != cpu || got.memoryBytes != mem || !got.measured {
			t.Errorf("%s usage = %+v, want %dm and %d bytes", what, got, cpu, mem)
		}
	}
	checkUsage("pid 101", perPID[101], 500, 1000<<10)
	checkUsage("pid 104 (its own cgroup)", perPID[104], 250, 50<<20)
	checkUsage("pid 105 (a shared cgroup: /proc figures)", perPID[105], 0, 4000<<10)
	checkUsage("gunicorn", perService["gunicorn"], 1500, 3000<<10)
	checkUsage("web-main-x", perService["web-main-x"], 250, 50<<20)
	checkUsage("postgres", perService["postgres"], 0, 4000<<10)

	// A pid reused by another process is not measured against the old one.
	write(t, procRoot+"/101/stat", strings.Replace(mustRead(t, procRoot+"/101/stat"), " 4242 ", " 4343 ", 1))
	if _, ok := a.measure(capturedProcs).byPID[101]; ok {
		t.Errorf("a reused pid was measured")
	}

	ports := a.ports(capturedProcs)
	wantPorts := []agentapi.Port{
		{Protocol: "tcp", Address: "0.0.0.0", Port: 8000, PID: 101, Service: "gunicorn"},
		{Protocol: "udp", Address: "0.0.0.0", Port: 5353, PID: 104, Service: "web-main-x"},
	}
	if !slices.Equal(ports, wantPorts) {
		t.Errorf("ports = %+v\nwant %+v", ports, wantPorts)
	}

	env := a.environment(101)
	if len(env) != 1 || env[0].Name != "PORT" || *env[0].Value != "8000" {
		t.Errorf("environment = %+v", env)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSockets(t *testing.T) {
	t.Parallel()
	header := "sl local rem st tx rx tr retr uid timeout inode\n"
	tests := []struct {
		name     string
		line     string
		protocol string
		want     []socket
	}{
		{"tcp listen v4", "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 11 1\n", "tcp", []socket{{"tcp", mustAddr("127.0.0.1"), 8080, 11}}},
		{"tcp established", "0: 0100007F:1F90 0100007F:D431 01 0:0 0:0 0 0 0 12 1\n", "tcp", nil},
		{"tcp6 any", "0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 13 1\n", "tcp", []socket{{"tcp", mustAddr("::"), 80, 13}}},
		{"tcp6 loopback", "0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 14 1\n", "tcp", []socket{{"tcp", mustAddr("::1"), 80, 14}}},
		{"udp bound", "0: 00000000:0035 00000000:0000 07 0:0 0:0 0 0 0 15 2\n", "udp", []socket{{"udp", mustAddr("0.0.0.0"), 53, 15}}},
		{"udp connected", "0: 0100007F:0035 0100007F:0035 01 0:0 0:0 0 0 0 16 2\n", "udp", nil},
		{"no inode", "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 0 1\n", "tcp", nil},
		{"short line", "0: 0100007F:1F90\n", "tcp", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockets([]byte(header+tt.line), tt.protocol)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := parseSockets([]byte(header+"0: ZZ:1F90 00000000:0000 0A 0 0 0 0 0 1 1\n"), "tcp"); err == nil {
		t.Errorf("a malformed address parsed")
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4711 (a (weird) name) S 1 4711 4711 0 -1 4194560 100 0 0 0 25 17 0 0 20 0 1 0 98765 1000 200 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != "a (weird) name" || st.ticks != 42 || st.start != 98765 {
		t.Errorf("parsed %+v", st)
	}
	for _, bad := range []string{"", "4711 no parens S 1", "4711 (x) S 1 2 3", "4711 (x)" + strings.Repeat(" z", 25)} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestServiceName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"python3":                "python3",
		"Web Server":             "web-server",
		"  --x--  ":              "x",
		"nginx: worker":          "nginx-worker",
		"kworker/0:1":            "kworker-0-1",
		"___":                    "",
		"ünï":                    "n",
		"app.v2_beta":            "app.v2_beta",
		strings.Repeat("a", 100): strings.Repeat("a", 63),
	}
	for in, want := range tests {
		if got := serviceName(in); got != want {
			t.Errorf("serviceName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactCmdline(t *testing.T) {
	t.Parallel()
	r := func(s string) string { return redacted(s) }
	tests := []struct {
		in, want []string
	}{
		{[]string{"app", "--port=80"}, []string{"app", "--port=80"}},
		{[]string{"app", "--password=pw"}, []string{"app", "--password=" + r("pw")}},
		{[]string{"app", "--api-key", "k", "--port", "80"}, []string{"app", "--api-key", r("k"), "--port", "80"}},
		{[]string{"app", "--token", "--verbose"}, []string{"app", "--token", "--verbose"}},
		{[]string{"env", "DB_PASSWORD=x", "run"}, []string{"env", "DB_PASSWORD=" + r("x"), "run"}},
		{[]string{"psql", "postgres://u:pw@h:5432/db?x=1"}, []string{"psql", "postgres://u:" + r("pw") + "@h:5432/db?x=1"}},
		{[]string{"curl", "https://h/p?u=a:b@c"}, []string{"curl", "https://h/p?u=a:b@c"}},
		{[]string{"x", "a://u:p@h b://v:q@i"}, []string{"x", "a://u:" + r("p") + "@h b://v:" + r("q") + "@i"}},
	}
	for _, tt := range tests {
		if got := redactCmdline(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("redactCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCgroup2Mount(t *testing.T) {
	t.Parallel()
	mountinfo := `22 28 0:21 / /proc rw,nosuid shared:12 - proc proc rw
25 28 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 25 0:27 / /sys/fs/cgroup/unified\040dir rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
`
	got := cgroup2Mount(newScanner(mountinfo))
	if got != "/sys/fs/cgroup/unified dir" {
		t.Errorf("cgroup2 mount = %q", got)
	}
	if got := cgroup2Mount(newScanner("1 2 0:1 / /x rw - ext4 /dev/sda rw\n")); got != "" {
		t.Errorf("found a cgroup2 mount in %q", got)
	}
}
