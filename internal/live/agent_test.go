package live_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/hosts"
	"github.com/snapcompose/snapcompose/internal/live"
	"github.com/snapcompose/snapcompose/internal/snapagent"
)

// TestRealAgent captures a temporary tree through the real snapagent and
// fetches a captured file back by its digest.
func TestRealAgent(t *testing.T) {
	t.Parallel()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const content = "order_id,total\n1,9.99\n"
	for name, body := range map[string]string{"var/app/data/orders.csv": content, "var/app/logs/app.log": "started\n", "etc/outside.conf": "x\n"} {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	agent, err := snapagent.New(snapagent.Config{Roots: []string{base}, Token: testToken + "-long-enough", Hostname: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agent.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "agent.token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"-long-enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := setupWithTokenFile(t, srv.URL, tokenFile, base)
	snap, err := src.Retrieve(context.Background(), liveSource())
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	want := []domain.File{
		{Path: "/var/app/data/orders.csv", Digest: digest(content), Size: int64(len(content)), Mode: 0o644},
		{Path: "/var/app/logs/app.log", Digest: digest("started\n"), Size: 8, Mode: 0o644},
	}
	if len(snap.Files) != len(want) {
		t.Fatalf("files = %+v, want %+v", snap.Files, want)
	}
	for i := range want {
		if snap.Files[i] != want[i] {
			t.Errorf("file %d = %+v, want %+v", i, snap.Files[i], want[i])
		}
	}

	rc, err := src.Blob(context.Background(), testHost, digest(content))
	if err != nil {
		t.Fatalf("Blob: %v", err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil || string(body) != content {
		t.Errorf("blob = %q, %v; want %q", body, err, content)
	}

	for _, p := range []string{"/../etc", "var/app", "/var/app/"} {
		bad := liveSource()
		bad.Path = p
		if _, err := src.Retrieve(context.Background(), bad); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("path %q: err = %v, want EINVALID", p, err)
		}
	}
}

func setupWithTokenFile(t *testing.T, url, tokenFile, rootfs string) *live.Source {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hosts.yaml")
	body := "hosts:\n  " + testHost + ":\n    url: " + url + "\n    token_file: " + tokenFile + "\n    rootfs: " + rootfs + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := hosts.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return live.New(f)
}
