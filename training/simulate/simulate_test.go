package simulate_test

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/training/simulate"
)

// podsPath is the OpenB pod list committed under data/.
func podsPath(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "data", "alibaba-openb", "openb_pod_list_default.csv")
}

func simulator(t testing.TB, seed uint64) *simulate.Simulator {
	t.Helper()
	pods, err := simulate.LoadPods(podsPath(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := simulate.New(seed, pods)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBaselinesLeaveRoomToLearn checks the simulator's premise: each
// deterministic strategy is clearly worse than the best possible choice.
func TestBaselinesLeaveRoomToLearn(t *testing.T) {
	t.Parallel()
	s := simulator(t, 1)
	policies := []simulate.Policy{simulate.Oracle{}, simulate.Random{Seed: 9},
		simulate.Baseline{Strategy: domain.FirstWin}, simulate.Baseline{Strategy: domain.LastWin}, simulate.Baseline{Strategy: domain.Priority}}
	const n = 300
	mean := map[string]float64{}
	conflicts := 0
	for i := range n {
		w := s.World(i)
		for _, p := range policies {
			run, err := w.Settle(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			mean[p.Name()] += run.Success / n
			if p.Name() == "oracle" {
				conflicts += len(run.Decisions)
			}
		}
	}
	t.Logf("mean success over %d worlds (%.1f decisions each): %v", n, float64(conflicts)/n, mean)
	for _, b := range []string{"FIRST_WIN", "LAST_WIN", "PRIORITY"} {
		if mean["oracle"]-mean[b] < 0.2 {
			t.Errorf("%s reaches %.3f against the oracle's %.3f: too little to learn", b, mean[b], mean["oracle"])
		}
	}
}

// TestHasDecisions: whether a world asks a policy anything does not depend
// on the policy, and HasDecisions knows it without settling.
func TestHasDecisions(t *testing.T) {
	t.Parallel()
	s := simulator(t, 5)
	none := 0
	for i := range 300 {
		w := s.World(i)
		got, err := w.HasDecisions()
		if err != nil {
			t.Fatal(err)
		}
		if !got {
			none++
		}
		for _, p := range []simulate.Policy{simulate.Random{Seed: 1}, simulate.Baseline{Strategy: domain.FirstWin}} {
			run, err := w.Settle(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(run.Decisions) > 0; got != want {
				t.Errorf("world %d: HasDecisions %v, %s made %d decisions", i, got, p.Name(), len(run.Decisions))
			}
		}
	}
	t.Logf("%d of 300 worlds have no decision", none)
}
