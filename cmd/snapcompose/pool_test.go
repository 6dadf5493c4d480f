package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/pgtest"
)

// TestPoolCommand: a capacity pool from the real OpenB node list, set by
// hand, and shown; bad input names the flag or the file and line.
func TestPoolCommand(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	m := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		mm := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
			Getenv: func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }}
		return mm.Run(context.Background(), args), out.String(), errOut.String()
	}
	nodes := "../../data/alibaba-openb/openb_node_list_all_node.csv"
	code, out, errOut := m("pool", "import", "openb", "--openb-nodes", nodes, "--nodes", "3", "--disk-per-node", "500GB")
	// The first three nodes: 32 cores and 256 GiB each.
	if code != 0 || !strings.Contains(out, "96 cores") || !strings.Contains(out, "768GiB") || !strings.Contains(out, "1500GB") || !strings.Contains(errOut, "3 OpenB nodes") {
		t.Errorf("pool import = %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = m("pool", "set", "small", "--cpu", "4", "--memory", "8GiB", "--disk", "100GB"); code != 0 || !strings.Contains(out, "4 cores") {
		t.Errorf("pool set = %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = m("pool", "show", "small"); code != 0 || !strings.Contains(out, "0 unreleased reservations") {
		t.Errorf("pool show = %d\n%s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "nodes.csv")
	os.WriteFile(bad, []byte("sn,cpu_milli,memory_mib,gpu,model\nn0,32000,262144,0,\nn1,lots,1,0,\n"), 0o644)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pool", "import", "x", "--openb-nodes", bad}, 2, bad + ":3"},
		{[]string{"pool", "set", "x", "--cpu", "many", "--memory", "1GB"}, 2, "--disk"},
		{[]string{"pool", "show", "nope"}, 2, "nope"},
		{[]string{"pool", "drain", "x"}, 2, "unknown subcommand"},
	} {
		code, out, errOut := m(tt.args...)
		refused(t, code, tt.code, out, errOut, tt.want)
	}
}
