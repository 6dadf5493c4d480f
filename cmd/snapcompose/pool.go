package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/quantity"
)

const poolSynopsis = "snapcompose pool set NAME --cpu Q --memory Q --disk Q | pool import NAME --openb-nodes FILE [--nodes N] [--disk-per-node Q] | pool show NAME"

// poolCmd manages the capacity pools compositions are provisioned against
// (in DATABASE_URL). A pool never shrinks below what its reservations hold.
func (m *Main) poolCmd(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return domain.Errorf(domain.EINVALID, "pool: want `%s`", poolSynopsis)
	}
	sub, name, rest := args[0], args[1], args[2:]
	switch sub {
	case "set", "import", "show":
	default:
		return domain.Errorf(domain.EINVALID, "pool: unknown subcommand %q: want `%s`", sub, poolSynopsis)
	}
	var capacity domain.Resources
	var nodes int
	switch sub {
	case "set":
		fs := m.flags("pool set")
		cpu := fs.String("cpu", "", "the pool's cpu, e.g. \"64 cores\" (required)")
		mem := fs.String("memory", "", "its memory, e.g. 256GiB (required)")
		disk := fs.String("disk", "", "its disk, e.g. 2TB (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		var err error
		if capacity, err = parseCapacity(*cpu, *mem, *disk); err != nil {
			return err
		}
	case "import":
		fs := m.flags("pool import")
		file := fs.String("openb-nodes", "", "an Alibaba OpenB node list `file` (sn,cpu_milli,memory_mib,gpu,model), e.g. data/alibaba-openb/openb_node_list_all_node.csv (required)")
		limit := fs.Int("nodes", 0, "take the first `N` nodes (0: all)")
		perNode := fs.String("disk-per-node", "1TB", "disk each node adds (the node list has none)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *file == "" {
			return domain.Errorf(domain.EINVALID, "--openb-nodes: a node list file is required")
		}
		if *limit < 0 {
			return domain.Errorf(domain.EINVALID, "--nodes: %d is negative", *limit)
		}
		disk, err := quantity.ParseBytes(*perNode)
		if err != nil || disk <= 0 {
			return domain.Errorf(domain.EINVALID, "--disk-per-node: %q: want a positive size such as 1TB", *perNode)
		}
		if capacity, nodes, err = readOpenBNodes(*file, *limit); err != nil {
			return err
		}
		capacity.DiskBytes = disk * int64(nodes)
	case "show":
		if err := parseFlags(m.flags("pool show"), rest); err != nil {
			return err
		}
	}
	st, err := m.openStore(ctx, "pool "+sub)
	if err != nil {
		return err
	}
	defer st.Close()
	if sub != "show" {
		if err := st.UpsertPool(ctx, name, capacity); err != nil {
			return err
		}
		if nodes > 0 {
			fmt.Fprintf(m.Stderr, "pool %s: %d OpenB nodes\n", name, nodes)
		}
	}
	u, err := st.PoolUsage(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "pool %s\n  %-9s %14s %14s %14s\n", u.Name, "", "cpu", "memory", "disk")
	for _, row := range []struct {
		what string
		r    domain.Resources
	}{{"capacity", u.Capacity}, {"reserved", u.Reserved}, {"free", u.Free}} {
		fmt.Fprintf(m.Stdout, "  %-9s %14s %14s %14s\n", row.what, quantity.FormatCPU(row.r.CPUMillicores),
			quantity.FormatBytes(row.r.MemoryBytes), quantity.FormatBytes(row.r.DiskBytes))
	}
	fmt.Fprintf(m.Stdout, "  %d unreleased reservations\n", u.Reservations)
	return nil
}

func parseCapacity(cpu, mem, disk string) (domain.Resources, error) {
	var r domain.Resources
	var problems []domain.Problem
	for _, q := range []struct {
		flag, value string
		parse       func(string) (int64, error)
		dst         *int64
	}{
		{"--cpu", cpu, quantity.ParseCPU, &r.CPUMillicores},
		{"--memory", mem, quantity.ParseBytes, &r.MemoryBytes},
		{"--disk", disk, quantity.ParseBytes, &r.DiskBytes},
	} {
		v, err := q.parse(q.value)
		switch {
		case q.value == "":
			problems = append(problems, domain.Problem{Where: q.flag, Message: "required"})
		case err != nil:
			problems = append(problems, domain.Problem{Where: q.flag, Message: err.Error()})
		case v <= 0:
			problems = append(problems, domain.Problem{Where: q.flag, Message: "must be positive"})
		}
		*q.dst = v
	}
	if len(problems) > 0 {
		return r, domain.Invalid("pool set: invalid capacity", problems)
	}
	return r, nil
}

// readOpenBNodes sums the cpu and memory of the first limit nodes (0: all)
// of an OpenB node list; a malformed row is an error naming file and line.
func readOpenBNodes(path string, limit int) (domain.Resources, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return domain.Resources{}, 0, domain.Errorf(domain.EINVALID, "--openb-nodes: %s", pathError(err))
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return domain.Resources{}, 0, domain.Errorf(domain.EINVALID, "--openb-nodes: %s: no header: %v", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, want := range []string{"sn", "cpu_milli", "memory_mib"} {
		if _, ok := col[want]; !ok {
			return domain.Resources{}, 0, domain.Errorf(domain.EINVALID, "--openb-nodes: %s: no %s column: want an OpenB node list (sn,cpu_milli,memory_mib,gpu,model)", path, want)
		}
	}
	var total domain.Resources
	n := 0
	for limit == 0 || n < limit {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return domain.Resources{}, 0, domain.Errorf(domain.EINVALID, "--openb-nodes: %s:%d: %v", path, line, err)
		}
		cpu, err1 := strconv.ParseInt(rec[col["cpu_milli"]], 10, 64)
		mib, err2 := strconv.ParseInt(rec[col["memory_mib"]], 10, 64)
		if err1 != nil || err2 != nil || cpu <= 0 || mib <= 0 {
			return domain.Resources{}, 0, domain.Errorf(domain.EINVALID, "--openb-nodes: %s:%d: node %q: want positive integers in cpu_milli and memory_mib", path, line, rec[col["sn"]])
		}
		total.CPUMillicores += cpu
		total.MemoryBytes += mib << 20
		n++
	}
	if n == 0 {
		return domain.Resources{}, 0, domain.Errorf(domain.EINVALID, "--openb-nodes: %s: no nodes", path)
	}
	return total, n, nil
}
