package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/snapcompose/snapcompose/internal/apitest"
	"github.com/snapcompose/snapcompose/internal/httpapi"
	"github.com/snapcompose/snapcompose/internal/pgtest"
)

// TestServeTemplatesInPostgres: templates put over the API are validated
// as catalog files, versioned by body, readable by analysts, writable only
// by admins, and serve compositions when the server has no catalog
// directory.
func TestServeTemplatesInPostgres(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	base := startServer(t, dbURL, "--model-poll", "0")
	admin, analyst := client(t), apitest.New(t)
	analyst.Token = testTokens[httpapi.Analyst]
	put := func(c *apitest.Client, id string, body []byte) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, base+"/v1/templates/"+id, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/yaml")
		resp, raw := c.Do(t, req)
		return resp.StatusCode, decode(t, "/v1/templates/"+id, raw)
	}
	bodies := map[string][]byte{}
	for _, id := range []string{"template_a", "template_b"} {
		b, err := os.ReadFile(seedCatalog + "/" + id + "/compose.yaml")
		if err != nil {
			t.Fatal(err)
		}
		bodies[id] = b
		if code, v := put(admin, id, b); code != 200 || v["version"] != float64(1) || v["current"] != true {
			t.Fatalf("PUT %s = %d %v", id, code, v)
		}
	}
	if code, v := put(admin, "template_a", bodies["template_a"]); code != 200 || v["version"] != float64(1) {
		t.Errorf("the same body again = %d %v, want version 1 kept", code, v)
	}
	changed := bytes.Replace(bodies["template_a"], []byte("description:"), []byte("description: changed"), 1)
	if code, v := put(admin, "template_a", changed); code != 200 || v["version"] != float64(2) {
		t.Errorf("a changed body = %d %v, want version 2", code, v)
	}
	resp, raw := analyst.Get(t, base+"/v1/templates/template_a?version=1")
	if v := decode(t, "", raw); resp.StatusCode != 200 || v["body"] != string(bodies["template_a"]) || v["current"] != false {
		t.Errorf("GET version 1 = %d %v", resp.StatusCode, v)
	}
	resp, raw = analyst.Get(t, base+"/v1/templates/template_a/versions")
	if resp.StatusCode != 200 || strings.Count(string(raw), `"version"`) != 2 {
		t.Errorf("versions = %d %s", resp.StatusCode, raw)
	}
	if code, e := put(analyst, "template_c", bodies["template_b"]); code != 403 {
		t.Errorf("an analyst putting a template = %d %v, want 403", code, e)
	}
	// Not YAML, so past the validating client.
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/templates/template_b", strings.NewReader("x-snapcompose:\n  id: template_b\nservices:\n  web:\n    image: nginx\n   ports: []\n"))
	req.Header.Set("Authorization", "Bearer "+testTokens[httpapi.Admin])
	bad, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e strings.Builder
	io.Copy(&e, bad.Body)
	bad.Body.Close()
	if bad.StatusCode != 400 || !strings.Contains(e.String(), "line 6") {
		t.Errorf("a template that does not parse = %d %s, want 400 naming line 6", bad.StatusCode, e.String())
	}
	if resp, _ := analyst.Get(t, base+"/v1/templates/nope"); resp.StatusCode != 404 {
		t.Errorf("an unknown template = %d, want 404", resp.StatusCode)
	}
	// Compositions use the catalog in Postgres.
	seed, err := os.ReadFile(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	composer := apitest.New(t)
	composer.Token = testTokens[httpapi.Composer]
	req, _ = http.NewRequest(http.MethodPost, base+"/v1/compositions?dry_run=true", bytes.NewReader(seed))
	req.Header.Set("Content-Type", "application/json")
	resp, raw = composer.Do(t, req)
	if plan := decode(t, "", raw); resp.StatusCode != 200 || len(plan["services"].([]any)) < 5 {
		t.Errorf("a dry run from the catalog in Postgres = %d %s", resp.StatusCode, raw)
	}

	// DELETE takes a template out of the catalog (admins only); a PUT
	// brings it back with its versions.
	del := func(c *apitest.Client, id string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, base+"/v1/templates/"+id, nil)
		resp, _ := c.Do(t, req)
		return resp.StatusCode
	}
	if code := del(composer, "template_b"); code != 403 {
		t.Errorf("a composer deleting a template = %d, want 403", code)
	}
	if code := del(admin, "template_b"); code != 204 {
		t.Fatalf("DELETE = %d, want 204", code)
	}
	if code := del(admin, "template_b"); code != 404 {
		t.Errorf("DELETE again = %d, want 404", code)
	}
	if resp, _ := analyst.Get(t, base+"/v1/templates/template_b"); resp.StatusCode != 404 {
		t.Errorf("GET a deleted template = %d, want 404", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/v1/compositions?dry_run=true", bytes.NewReader(seed))
	req.Header.Set("Content-Type", "application/json")
	resp, raw = composer.Do(t, req)
	if resp.StatusCode != 404 || !strings.Contains(string(raw), "template_b") {
		t.Errorf("a dry run naming a deleted template = %d %s, want 404 naming it", resp.StatusCode, raw)
	}
	if code, v := put(admin, "template_b", bodies["template_b"]); code != 200 || v["version"] != float64(1) {
		t.Errorf("PUT after DELETE = %d %v, want version 1 back", code, v)
	}
}
