package snapagent

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/snapcompose/snapcompose/internal/agentapi"
)

// socket is a listening socket read from /proc/net/{tcp,udp}[6].
type socket struct {
	protocol string
	addr     netip.Addr
	port     int
	inode    uint64
}

// netFiles are the socket tables read, with their protocols.
var netFiles = []struct{ name, protocol string }{
	{"tcp", "tcp"}, {"tcp6", "tcp"}, {"udp", "udp"}, {"udp6", "udp"},
}

// tcpListen is TCP_LISTEN in the "st" column.
const tcpListen = 0x0A

// parseSockets returns the listening sockets of a /proc/net table: TCP
// sockets in state LISTEN, UDP sockets bound with no remote end.
func parseSockets(b []byte, protocol string) ([]socket, error) {
	var out []socket
	first := true
	for line := range bytes.Lines(b) {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 10 {
			continue
		}
		addr, port, err := parseHexAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("local address %q: %w", f[1], err)
		}
		_, remotePort, err := parseHexAddr(f[2])
		if err != nil {
			return nil, fmt.Errorf("remote address %q: %w", f[2], err)
		}
		state, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("state %q: %w", f[3], err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("inode %q: %w", f[9], err)
		}
		listening := protocol == "tcp" && state == tcpListen || protocol == "udp" && remotePort == 0
		if listening && inode != 0 {
			out = append(out, socket{protocol: protocol, addr: addr, port: port, inode: inode})
		}
	}
	return out, nil
}

// parseHexAddr parses "0100007F:1F90": an IPv4 (8 hex digits) or IPv6 (32)
// address as 32-bit words in host byte order, and a port.
func parseHexAddr(s string) (netip.Addr, int, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok || len(hexAddr) != 8 && len(hexAddr) != 32 {
		return netip.Addr{}, 0, fmt.Errorf("not ADDRESS:PORT in hex")
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	raw := make([]byte, len(hexAddr)/2)
	for i := 0; i < len(hexAddr); i += 8 {
		word, err := strconv.ParseUint(hexAddr[i:i+8], 16, 32)
		if err != nil {
			return netip.Addr{}, 0, err
		}
		binary.NativeEndian.PutUint32(raw[i/2:], uint32(word))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr, int(port), nil
}

// socketInodes returns the socket inodes pid holds open, from the
// "socket:[inode]" links in /proc/[pid]/fd.
func (a *Agent) socketInodes(pid int) []uint64 {
	dir := a.procPath(pid) + "/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var inodes []uint64
	for _, e := range entries {
		link := readlink(dir + "/" + e.Name())
		if rest, ok := strings.CutPrefix(link, "socket:["); ok {
			if inode, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64); err == nil {
				inodes = append(inodes, inode)
			}
		}
	}
	return inodes
}

// ports returns the listening sockets procs own. A socket several of them
// share (a server's workers inherit their parent's) is reported once, for
// the lowest pid. Socket tables are read once per network namespace.
func (a *Agent) ports(procs []*proc) []agentapi.Port {
	owner := map[uint64]*proc{}
	tables := map[string]string{} // network namespace -> directory of its tables
	for _, p := range procs {
		for _, inode := range a.socketInodes(p.pid) {
			if have, ok := owner[inode]; !ok || p.pid < have.pid {
				owner[inode] = p
			}
		}
		ns := readlink(a.procPath(p.pid) + "/ns/net")
		if _, ok := tables[ns]; !ok {
			if ns == "" {
				tables[ns] = a.cfg.ProcRoot + "/net"
			} else {
				tables[ns] = a.procPath(p.pid) + "/net"
			}
		}
	}
	out := []agentapi.Port{}
	if len(owner) == 0 {
		return out
	}
	seen := map[uint64]bool{}
	dirs := make([]string, 0, len(tables))
	for _, dir := range tables {
		dirs = append(dirs, dir)
	}
	slices.Sort(dirs)
	for _, dir := range dirs {
		for _, nf := range netFiles {
			b, err := readLimited(dir+"/"+nf.name, 64<<20)
			if err != nil {
				continue // no IPv6, say
			}
			sockets, err := parseSockets(b, nf.protocol)
			if err != nil {
				a.log.Warn("cannot parse socket table", "file", dir+"/"+nf.name, "error", err.Error())
				continue
			}
			for _, s := range sockets {
				p, ok := owner[s.inode]
				if !ok || seen[s.inode] {
					continue
				}
				seen[s.inode] = true
				out = append(out, agentapi.Port{Protocol: s.protocol, Address: s.addr.String(), Port: s.port, PID: p.pid, Service: p.service})
			}
		}
	}
	slices.SortFunc(out, func(x, y agentapi.Port) int {
		return cmp.Or(cmp.Compare(x.Protocol, y.Protocol), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Address, y.Address), cmp.Compare(x.PID, y.PID))
	})
	return out
}
