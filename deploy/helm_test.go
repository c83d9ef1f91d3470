package deploy

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// chartValues are the keys of the NATS chart's values.yaml (nats/nats 1.x,
// helm/charts/nats/values.yaml in the chart's repository) that
// helm-values.yaml may set; a key the chart does not read would be ignored
// without a word. Under a key marked free, anything goes: the chart merges
// it into the NATS config (config.merge, config.jetstream.merge), the
// ConfigMap (configMap.merge), the container (container.merge), or reads
// a map (container.env: name to value or valueFrom;
// podTemplate.topologySpreadConstraints: topology key to constraint).
var chartValues = map[string]bool{ // path: free
	"fullnameOverride":                       false,
	"config.cluster.enabled":                 false,
	"config.cluster.replicas":                false,
	"config.jetstream.enabled":               false,
	"config.jetstream.fileStore.enabled":     false,
	"config.jetstream.fileStore.pvc.enabled": false,
	"config.jetstream.fileStore.pvc.size":    false,
	"config.jetstream.merge":                 true,
	"config.merge":                           true,
	"configMap.merge":                        true,
	"container.image.tag":                    false,
	"container.env":                          true,
	"container.merge":                        true,
	"podTemplate.topologySpreadConstraints":  true,
	"podDisruptionBudget.enabled":            false,
}

// helmRelease is what the manifests need to know of the NATS release.
type helmRelease struct {
	fullname string // the names of the StatefulSet and its headless Service
	replicas int
	secret   string // the Secret the passwords come from
}

// hosts are the pods' addresses, as the services' NATS_URL lists them.
func (r helmRelease) hosts() []string {
	var hosts []string
	for i := range r.replicas {
		hosts = append(hosts, fmt.Sprintf("%s-%d.%s-headless", r.fullname, i, r.fullname))
	}
	return hosts
}

func helmValues(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("nats/helm-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatalf("helm-values.yaml: %v", err)
	}
	return values
}

func lookup(values map[string]any, path string) any {
	var v any = values
	for _, key := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[key]
	}
	return v
}

// helmNATS reads the release off helm-values.yaml, failing unless its
// passwords come from one Secret.
func helmNATS(t *testing.T) helmRelease {
	t.Helper()
	values := helmValues(t)
	r := helmRelease{}
	r.fullname, _ = lookup(values, "fullnameOverride").(string)
	r.replicas, _ = lookup(values, "config.cluster.replicas").(int)
	if r.fullname == "" || r.replicas == 0 {
		t.Fatalf("helm-values.yaml sets no fullnameOverride or config.cluster.replicas: the services could not name the pods")
	}
	secrets := map[string]bool{}
	env, _ := lookup(values, "container.env").(map[string]any)
	for name := range env {
		if ref, ok := lookup(env, name+".valueFrom.secretKeyRef.name").(string); ok {
			secrets[ref] = true
		}
	}
	if len(secrets) != 1 {
		t.Fatalf("the NATS passwords come from the Secrets %v, want one", secrets)
	}
	for s := range secrets {
		r.secret = s
	}
	return r
}

func TestNATSHelmValuesAreTheChartsAndRunTheClusterOfAccountsConf(t *testing.T) {
	values := helmValues(t)
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if free, known := chartValues[prefix]; known {
			if ok && !free {
				t.Errorf("helm-values.yaml sets %s to a map; the chart takes a value there", prefix)
			}
			return
		}
		if !ok {
			t.Errorf("helm-values.yaml sets %s, which is not a value of the NATS chart this file was checked against", prefix)
			return
		}
		for k, sub := range m {
			walk(strings.TrimPrefix(prefix+"."+k, "."), sub)
		}
	}
	walk("", values)

	for path, want := range map[string]any{
		"config.cluster.enabled":                 true,
		"config.cluster.replicas":                3,
		"config.jetstream.enabled":               true,
		"config.jetstream.fileStore.enabled":     true,
		"config.jetstream.fileStore.pvc.enabled": true,
		// as cluster.conf does
		"config.jetstream.merge.sync_interval": "always",
		// the chart's nats.conf includes accounts.conf, which the install
		// puts beside it (--set-file configMap.merge.data.accounts\.conf)
		"config.merge.$include": "accounts.conf",
	} {
		if got := lookup(values, path); got != want {
			t.Errorf("helm-values.yaml: %s is %v, want %v", path, got, want)
		}
	}
	guide, err := os.ReadFile("../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	const setFile = `--set-file 'configMap.merge.data.accounts\.conf=deploy/nats/accounts.conf'`
	for _, doc := range []struct{ name, text string }{{"docs/deployment.md", string(guide)}, {"helm-values.yaml", mustRead(t, "nats/helm-values.yaml")}} {
		if !strings.Contains(doc.text, "-f deploy/nats/helm-values.yaml") || !strings.Contains(doc.text, setFile) {
			t.Errorf("%s does not install the chart with -f deploy/nats/helm-values.yaml and %s", doc.name, setFile)
		}
	}

	// Every password accounts.conf reads, from the Secret of the manifests.
	r := helmNATS(t)
	m := loadManifests(t)
	secret, ok := m.secrets[r.secret]
	if !ok {
		t.Fatalf("the NATS passwords come from Secret %s, which deploy/kubernetes does not have", r.secret)
	}
	env, _ := lookup(values, "container.env").(map[string]any)
	for _, pw := range accountPasswords(t) {
		key, _ := lookup(env, pw+".valueFrom.secretKeyRef.key").(string)
		want := strings.ToLower(strings.TrimSuffix(pw, "_PASSWORD")) + "-password"
		if key != want {
			t.Errorf("helm-values.yaml: container.env.%s is from key %q, want %q", pw, key, want)
		}
		if _, ok := secret.StringData[key]; !ok {
			t.Errorf("Secret %s has no key %s, which NATS reads %s from", r.secret, key, pw)
		}
	}
	if len(env) != len(accountPasswords(t)) {
		t.Errorf("container.env sets %d variables, accounts.conf reads %d", len(env), len(accountPasswords(t)))
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
