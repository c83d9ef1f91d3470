package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

// manifests are the objects of deploy/kubernetes, by kind.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	pdbs        []*policyv1.PodDisruptionBudget
	jobs        []*batchv1.Job
	secrets     map[string]*corev1.Secret
	services    []*corev1.Service
}

// strictDecoder decodes the API's built-in kinds the manifests may use as
// the API server's strict field validation does: an unknown or duplicate
// field, a value of the wrong type, an unknown kind or apiVersion fail.
// The schemas kubeconform would download cannot be reached here; these are
// the Go types that the API server's own schemas are generated from.
func strictDecoder(t *testing.T) runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, batchv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

var onlyComments = regexp.MustCompile(`(?m)^\s*(#.*)?$`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	decoder := strictDecoder(t)
	m := manifests{deployments: map[string]*appsv1.Deployment{}, secrets: map[string]*corev1.Secret{}}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		docs := k8syaml.NewYAMLReader(bufio.NewReader(f))
		for i := 1; ; i++ {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(bytes.TrimSpace(onlyComments.ReplaceAll(doc, nil))) == 0 {
				continue
			}
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", file, i, err)
				continue
			}
			meta := obj.(metav1.Object)
			where := fmt.Sprintf("%s: %T %s", file, obj, meta.GetName())
			for _, msg := range validation.IsDNS1123Subdomain(meta.GetName()) {
				t.Errorf("%s: name: %s", where, msg)
			}
			if meta.GetNamespace() != "" {
				t.Errorf("%s names namespace %s: the namespace is kubectl's -n", where, meta.GetNamespace())
			}
			checkLabels(t, where, meta.GetLabels())
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.deployments[o.Name] = o
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			case *batchv1.Job:
				m.jobs = append(m.jobs, o)
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.Service:
				m.services = append(m.services, o)
			default:
				t.Errorf("%s: a kind this test does not check", where)
			}
		}
		f.Close()
	}
	return m
}

func checkLabels(t *testing.T, where string, l map[string]string) {
	t.Helper()
	for _, err := range metavalidation.ValidateLabels(l, field.NewPath("labels")) {
		t.Errorf("%s: %v", where, err)
	}
}

// The image of every container: one, so that a release changes it in one
// place.
func theImage(t *testing.T, m manifests) string {
	t.Helper()
	images := map[string]bool{}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			images[c.Image] = true
		}
	}
	for _, j := range m.jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			images[c.Image] = true
		}
	}
	if len(images) != 1 {
		t.Errorf("images %v: want one image for every container", images)
	}
	for image := range images {
		return image
	}
	return ""
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	if len(m.deployments) == 0 || len(m.pdbs) == 0 || len(m.jobs) == 0 || len(m.secrets) == 0 {
		t.Fatalf("%d Deployments, %d PodDisruptionBudgets, %d Jobs, %d Secrets", len(m.deployments), len(m.pdbs), len(m.jobs), len(m.secrets))
	}
	theImage(t, m)
}

func TestKubernetesRunsEachServiceProbedAndStoppedGracefully(t *testing.T) {
	m := loadManifests(t)
	table := settingsTable(t)
	nats := helmNATS(t)
	makers := streamMakers(t, table)
	for _, name := range services {
		d, ok := m.deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		where := "Deployment " + name
		pod := d.Spec.Template
		selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || selector.Empty() || !selector.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: its selector %v does not select its pods' labels %v (%v)", where, d.Spec.Selector, pod.Labels, err)
		}
		checkLabels(t, where+" pod template", pod.Labels)
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		if len(pod.Spec.Containers) != 1 {
			t.Errorf("%s: %d containers, want the service's", where, len(pod.Spec.Containers))
			continue
		}
		c := pod.Spec.Containers[0]
		if !slices.Equal(c.Args, []string{name}) || len(c.Command) != 0 {
			t.Errorf("%s runs %v %v, want the image's entrypoint with [%s]", where, c.Command, c.Args, name)
		}
		checkPodSecurity(t, where, pod.Spec, c)
		checkResources(t, where, c)
		env := checkEnv(t, where, c, m.secrets)

		// Liveness on /healthz and readiness on /readyz, where the service serves them.
		listen := listenSetting(name)
		if want := fmt.Sprintf(":%d", containerPort[listen]); env[listen] != want {
			t.Errorf("%s: %s=%q, want %q", where, listen, env[listen], want)
		}
		for _, p := range []struct {
			kind  string
			probe *corev1.Probe
			path  string
		}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", where, p.kind)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s: %s probe on %s, want %s", where, p.kind, p.probe.HTTPGet.Path, p.path)
			}
			if port := resolvePort(c, p.probe.HTTPGet.Port); port != int32(containerPort[listen]) {
				t.Errorf("%s: %s probe on port %s (container port %d), want %s's %d", where, p.kind, p.probe.HTTPGet.Port.String(), port, listen, containerPort[listen])
			}
		}

		// The grace outlasts the preStop sleep and the stop.
		budget := stopBudget(t, table, name, env)
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			if c.Lifecycle.PreStop.Sleep == nil {
				t.Errorf("%s: a preStop hook other than sleep, in an image with nothing but the binary", where)
			} else {
				budget += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
		}
		grace := pod.Spec.TerminationGracePeriodSeconds
		if grace == nil || time.Duration(*grace)*time.Second <= budget {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want more than %s (preStop, then %v)", where, ptrString(grace), budget, stopBounds[name])
		}

		// Secrets: the database, and NATS as the service's user on every node of the Helm release.
		if ref := secretRef(c, "DATABASE_URL"); ref == nil {
			t.Errorf("%s: DATABASE_URL is not from a Secret", where)
		}
		if ref := secretRef(c, "NATS_PASSWORD"); ref == nil || ref.Key != natsUser[name]+"-password" || ref.Name != nats.secret {
			t.Errorf("%s: NATS_PASSWORD is not key %s-password of the Secret %s, that NATS reads too", where, natsUser[name], nats.secret)
		}
		checkNATSURL(t, where, name, env["NATS_URL"], nats.hosts(), "4222", func(string) string { return "$(NATS_PASSWORD)" })
		if slices.Contains(makers, name) && env["STREAM_REPLICAS"] != fmt.Sprint(nats.replicas) {
			t.Errorf("%s: STREAM_REPLICAS=%q, want %d (JetStream R%d)", where, env["STREAM_REPLICAS"], nats.replicas, nats.replicas)
		}

		// A PodDisruptionBudget that lets a drain take one pod at a time.
		var budgets []*policyv1.PodDisruptionBudget
		for _, pdb := range m.pdbs {
			s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err == nil && !s.Empty() && s.Matches(labels.Set(pod.Labels)) {
				budgets = append(budgets, pdb)
			}
		}
		if len(budgets) != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", where, len(budgets))
		} else if !allowsADisruption(budgets[0], replicas) {
			t.Errorf("%s: PodDisruptionBudget %s lets no pod of %d go: a node drain would hang", where, budgets[0].Name, replicas)
		}
	}
	for name := range m.deployments {
		if !slices.Contains(services, name) {
			t.Errorf("Deployment %s runs no service of %v", name, services)
		}
	}
	if smtp := secretRef(m.deployments["notifier"].Spec.Template.Spec.Containers[0], "SMTP_URL"); smtp == nil {
		t.Error("the notifier's SMTP_URL is not from a Secret")
	}

	// The customers Service reaches the API port.
	for _, svc := range m.services {
		d := m.deployments["customers"]
		if !labels.Set(d.Spec.Template.Labels).Has("app.kubernetes.io/name") || svc.Spec.Selector["app.kubernetes.io/name"] != "customers" {
			t.Errorf("Service %s selects %v, not the command service", svc.Name, svc.Spec.Selector)
			continue
		}
		for _, p := range svc.Spec.Ports {
			if resolvePort(d.Spec.Template.Spec.Containers[0], p.TargetPort) != int32(containerPort["HTTP_ADDR"]) {
				t.Errorf("Service %s port %s: target %s is not the API's port", svc.Name, p.Name, p.TargetPort.String())
			}
		}
	}
}

func TestKubernetesMigratesInAJob(t *testing.T) {
	m := loadManifests(t)
	image := theImage(t, m)
	if len(m.jobs) != 1 {
		t.Fatalf("%d Jobs, want the migration's", len(m.jobs))
	}
	j := m.jobs[0]
	spec := j.Spec.Template.Spec
	if len(spec.Containers) != 1 || !slices.Equal(spec.Containers[0].Args, []string{"migrate"}) || spec.Containers[0].Image != image {
		t.Fatalf("Job %s does not run migrate in the image %s", j.Name, image)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("Job %s: restartPolicy %q", j.Name, spec.RestartPolicy)
	}
	if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil {
		t.Errorf("Job %s: no backoffLimit or activeDeadlineSeconds: a broken migration would retry for ever", j.Name)
	}
	c := spec.Containers[0]
	checkPodSecurity(t, "Job "+j.Name, spec, c)
	checkResources(t, "Job "+j.Name, c)
	checkEnv(t, "Job "+j.Name, c, m.secrets)
	if secretRef(c, "DATABASE_URL") == nil {
		t.Errorf("Job %s: DATABASE_URL is not from a Secret", j.Name)
	}
}

func checkPodSecurity(t *testing.T, where string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot is not set", where)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container %s may write its root filesystem or escalate privileges", where, c.Name)
	}
}

// checkResources wants CPU and memory requests, so the scheduler places the
// pod, and a memory limit, so a leak kills the pod and not its node.
func checkResources(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("%s: container %s resources %v: want cpu and memory requests and a memory limit", where, c.Name, r)
	}
	if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
		t.Errorf("%s: container %s: memory limit below its request", where, c.Name)
	}
}

// secretish are the settings that hold a secret, or a URL with one in it.
var secretish = regexp.MustCompile(`^(DATABASE_URL|SMTP_URL|.*PASSWORD.*|.*TOKEN.*|.*SECRET.*)$`)

// checkEnv checks that secrets come from Secrets that exist, with the key;
// that a URL in a literal has no password in it but a reference $(VAR) to a
// variable from a Secret defined before it; and returns the literal values
// (and, for those from Secrets, nothing).
func checkEnv(t *testing.T, where string, c corev1.Container, secrets map[string]*corev1.Secret) map[string]string {
	t.Helper()
	env := map[string]string{}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		for _, msg := range validation.IsEnvVarName(e.Name) {
			t.Errorf("%s: env %s: %s", where, e.Name, msg)
		}
		if _, dup := env[e.Name]; dup || fromSecret[e.Name] {
			t.Errorf("%s: env %s set twice", where, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			var inData, inStringData bool
			if s, ok := secrets[ref.Name]; ok {
				_, inData = s.Data[ref.Key]
				_, inStringData = s.StringData[ref.Key]
			}
			if !inData && !inStringData {
				t.Errorf("%s: env %s is from key %s of Secret %s, which the manifests do not have", where, e.Name, ref.Key, ref.Name)
			}
			fromSecret[e.Name] = true
			continue
		}
		if secretish.MatchString(e.Name) {
			t.Errorf("%s: env %s is a literal; it belongs in a Secret", where, e.Name)
		}
		for _, raw := range strings.Split(e.Value, ",") {
			u, err := url.Parse(raw)
			if err != nil || u.User == nil {
				continue
			}
			pw, set := u.User.Password()
			ref, ok := strings.CutPrefix(pw, "$(")
			ref, closed := strings.CutSuffix(ref, ")")
			if set && !(ok && closed && fromSecret[ref]) {
				t.Errorf("%s: env %s has a password in a literal URL, not $(VAR) of a variable from a Secret set before it", where, e.Name)
			}
		}
		env[e.Name] = e.Value
	}
	return env
}

func secretRef(c corev1.Container, name string) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// resolvePort is the container port a probe or Service names, by name or
// number; 0 when the container declares no such port.
func resolvePort(c corev1.Container, port intstr.IntOrString) int32 {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort
		}
	}
	return 0
}

func allowsADisruption(pdb *policyv1.PodDisruptionBudget, replicas int32) bool {
	switch {
	case pdb.Spec.MinAvailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(replicas), true)
		return err == nil && int32(n) < replicas
	case pdb.Spec.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(replicas), false)
		return err == nil && n >= 1
	}
	return false
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
