package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// helmBin is the helm that scripts/helm.sh builds (SIGNALBOX_HELM, or the
// repository's bin/helm).
func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SIGNALBOX_HELM")
	if bin == "" {
		abs, err := filepath.Abs(filepath.Join("..", "bin", "helm"))
		require.NoError(t, err)
		bin = abs
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no helm at %s: run scripts/helm.sh build (make test does)", bin)
	}
	return bin
}

// helmRun runs helm on the chart and returns its stdout.
func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	// No repository or cache lookups: everything helm reads is here.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %v: %w: %s", args, err, errOut.String())
	}
	return out.String(), nil
}

var chartDir = filepath.Join("helm", "signalbox")

// kubeVersion is the cluster version the chart is rendered for (a helm
// built with go install has no default of its own beyond an old 1.20).
const kubeVersion = "1.33.0"

// manifests is a rendered chart, decoded strictly into the Kubernetes types.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	accounts    map[string]*corev1.ServiceAccount
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
}

// strictDecode decodes one YAML document into v: a duplicate key, or a field
// that v's type does not have (a misspelling, a wrong nesting), fails.
func strictDecode(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// render runs helm template with the values and decodes every manifest.
func render(t *testing.T, set ...string) manifests {
	t.Helper()
	args := []string{"template", "sb", chartDir, "--namespace", "apps", "--kube-version", kubeVersion}
	for _, s := range set {
		// "string:" sends a value as a string (--set-string): an env value
		// of 40 given with --set is a number, which the strict decoding
		// refuses, as the API server would.
		if v, ok := strings.CutPrefix(s, "string:"); ok {
			args = append(args, "--set-string", v)
		} else {
			args = append(args, "--set", s)
		}
	}
	out, err := helmRun(t, args...)
	require.NoError(t, err)
	m := manifests{
		deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, accounts: map[string]*corev1.ServiceAccount{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
	}
	n := 0
	for _, doc := range docSep.Split(out, -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &head), doc)
		if head.Kind == "" {
			continue // only comments
		}
		n++
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			m.deployments[head.Metadata.Name], obj = o, o
		case "batch/v1 Job":
			o := &batchv1.Job{}
			m.jobs[head.Metadata.Name], obj = o, o
		case "v1 Service":
			o := &corev1.Service{}
			m.services[head.Metadata.Name], obj = o, o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps[head.Metadata.Name], obj = o, o
		case "v1 Secret":
			o := &corev1.Secret{}
			m.secrets[head.Metadata.Name], obj = o, o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			m.accounts[head.Metadata.Name], obj = o, o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			m.hpas[head.Metadata.Name], obj = o, o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			m.pdbs[head.Metadata.Name], obj = o, o
		default:
			t.Fatalf("the chart renders a %s %s this test does not know", head.APIVersion, head.Kind)
		}
		require.NoError(t, strictDecode([]byte(doc), obj), "%s %s:\n%s", head.Kind, head.Metadata.Name, doc)
	}
	require.Positive(t, n)
	return m
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		_, dup := env[e.Name]
		if dup {
			panic("duplicate env " + e.Name)
		}
		env[e.Name] = e
	}
	return env
}

func TestChartDefaults(t *testing.T) {
	t.Parallel()
	m := render(t, "postgresql.url=postgres://sb:pw@db:5432/signalbox", "smtp.url=smtp://mail:587")

	api, worker := m.deployments["sb-signalbox-api"], m.deployments["sb-signalbox-worker"]
	require.NotNil(t, api)
	require.NotNil(t, worker)
	require.EqualValues(t, 2, *api.Spec.Replicas)
	require.EqualValues(t, 3, *worker.Spec.Replicas)
	require.Empty(t, m.hpas)
	require.Len(t, m.pdbs, 2)
	require.Equal(t, 1, m.pdbs["sb-signalbox-worker"].Spec.MinAvailable.IntValue())

	for role, d := range map[string]*appsv1.Deployment{"api": api, "worker": worker} {
		spec := d.Spec.Template.Spec
		require.Equal(t, d.Spec.Selector.MatchLabels, pick(d.Spec.Template.Labels, d.Spec.Selector.MatchLabels), role)
		require.Len(t, spec.Containers, 1, role)
		c := spec.Containers[0]
		require.Equal(t, []string{role}, c.Args, role)
		require.Equal(t, "ghcr.io/signalbox/signalbox:0.1.0", c.Image, role)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, role)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, role)
		require.False(t, c.Resources.Requests.Cpu().IsZero(), role)
		require.False(t, c.Resources.Requests.Memory().IsZero(), role)
		require.True(t, *spec.SecurityContext.RunAsNonRoot, role)
		require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, role)
		require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, role)
		env := envOf(c)
		require.Equal(t, "sb-signalbox", env["DATABASE_URL"].ValueFrom.SecretKeyRef.Name, role)
		require.Equal(t, "sb-signalbox", c.EnvFrom[0].ConfigMapRef.Name, role)
		// Pods roll when the configuration changes.
		require.NotEmpty(t, d.Spec.Template.Annotations["checksum/config"], role)
	}
	require.Equal(t, "0.0.0.0:8081", envOf(worker.Spec.Template.Spec.Containers[0])["HEALTH_ADDR"].Value)
	require.Equal(t, "health", worker.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.String())

	svc := m.services["sb-signalbox-api"]
	require.EqualValues(t, 80, svc.Spec.Ports[0].Port)
	require.Equal(t, "api", svc.Spec.Selector["app.kubernetes.io/component"])

	cm := m.configMaps["sb-signalbox"].Data
	require.Equal(t, "temporal-frontend.temporal.svc:7233", cm["TEMPORAL_ADDRESS"])
	require.Equal(t, "signalbox", cm["TEMPORAL_NAMESPACE"])
	require.Equal(t, "none", cm["TEMPORAL_COMPRESSION"])
	require.Equal(t, "8", cm["WORKER_POLLERS"])

	sec := m.secrets["sb-signalbox"].StringData
	require.Equal(t, "postgres://sb:pw@db:5432/signalbox", sec["DATABASE_URL"])
	require.Equal(t, "smtp://mail:587", sec["SMTP_URL"])
	hooks := m.secrets["sb-signalbox-hooks"]
	require.Equal(t, "pre-install,pre-upgrade", hooks.Annotations["helm.sh/hook"])

	migrate := m.jobs["sb-signalbox-migrate"]
	require.Equal(t, "pre-install,pre-upgrade", migrate.Annotations["helm.sh/hook"])
	mc := migrate.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"migrate"}, mc.Args)
	require.Equal(t, "sb-signalbox-hooks", envOf(mc)["DATABASE_URL"].ValueFrom.SecretKeyRef.Name)
	require.Equal(t, corev1.RestartPolicyNever, migrate.Spec.Template.Spec.RestartPolicy)

	setup := m.jobs["sb-signalbox-temporal-setup"]
	require.NotNil(t, setup)
	script := setup.Spec.Template.Spec.Containers[0].Args[0]
	for _, attr := range []string{"SignalboxWorkspace", "SignalboxAutomation", "SignalboxContact"} {
		require.Contains(t, script, attr)
	}
	// The setup runs before the migration, and the hook secret before both.
	require.Equal(t, "-5", setup.Annotations["helm.sh/hook-weight"])
	require.Equal(t, "0", migrate.Annotations["helm.sh/hook-weight"])
	require.Equal(t, "-10", hooks.Annotations["helm.sh/hook-weight"])
}

func TestChartNonDefaults(t *testing.T) {
	t.Parallel()
	m := render(t, "existingSecret=signalbox-prod", "api.autoscaling.enabled=true", "api.autoscaling.maxReplicas=6",
		"worker.autoscaling.enabled=true", "worker.autoscaling.minReplicas=4", "worker.podDisruptionBudget.enabled=false",
		"temporal.setup.enabled=false", "temporal.address=temporal.example:7233", "temporal.compression=gzip",
		"image.tag=1.2.3", "worker.pollers=4", "serviceAccount.create=false",
		"extraEnv[0].name=DB_MAX_CONNS", "string:extraEnv[0].value=40", "config.RECONCILE_EVERY=1m")

	require.Empty(t, m.secrets, "an existing secret replaces the chart's")
	require.Empty(t, m.accounts)
	require.Nil(t, m.jobs["sb-signalbox-temporal-setup"])
	require.Len(t, m.pdbs, 1)
	require.Len(t, m.hpas, 2)
	hpa := m.hpas["sb-signalbox-api"]
	require.EqualValues(t, 6, hpa.Spec.MaxReplicas)
	require.EqualValues(t, 2, *hpa.Spec.MinReplicas)
	require.Equal(t, "sb-signalbox-api", hpa.Spec.ScaleTargetRef.Name)
	require.EqualValues(t, 70, *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization)
	require.EqualValues(t, 4, *m.hpas["sb-signalbox-worker"].Spec.MinReplicas)

	for _, d := range m.deployments {
		require.Nil(t, d.Spec.Replicas, "the HPA owns %s's replicas", d.Name)
		c := d.Spec.Template.Spec.Containers[0]
		require.Equal(t, "ghcr.io/signalbox/signalbox:1.2.3", c.Image)
		require.Equal(t, "default", d.Spec.Template.Spec.ServiceAccountName)
		env := envOf(c)
		require.Equal(t, "signalbox-prod", env["DATABASE_URL"].ValueFrom.SecretKeyRef.Name)
		require.Equal(t, "signalbox-prod", env["TEMPORAL_ADDRESS"].ValueFrom.SecretKeyRef.Name)
		require.True(t, *env["TEMPORAL_ADDRESS"].ValueFrom.SecretKeyRef.Optional)
		require.True(t, *env["SMTP_URL"].ValueFrom.SecretKeyRef.Optional)
		require.Equal(t, "40", env["DB_MAX_CONNS"].Value)
	}
	require.Equal(t, "signalbox-prod", envOf(m.jobs["sb-signalbox-migrate"].Spec.Template.Spec.Containers[0])["DATABASE_URL"].ValueFrom.SecretKeyRef.Name)
	cm := m.configMaps["sb-signalbox"].Data
	require.Equal(t, "temporal.example:7233", cm["TEMPORAL_ADDRESS"])
	require.Equal(t, "gzip", cm["TEMPORAL_COMPRESSION"])
	require.Equal(t, "4", cm["WORKER_POLLERS"])
	require.Equal(t, "1m", cm["RECONCILE_EVERY"])
}

func TestChartNeedsADatabase(t *testing.T) {
	t.Parallel()
	_, err := helmRun(t, "template", "sb", chartDir, "--kube-version", kubeVersion)
	require.ErrorContains(t, err, "set postgresql.url")
}

func TestChartLints(t *testing.T) {
	t.Parallel()
	out, err := helmRun(t, "lint", "--strict", chartDir, "--kube-version", kubeVersion, "--set", "postgresql.url=postgres://db/x")
	require.NoError(t, err, out)
}

// TestStrictDecodeCatchesMistakes makes sure the checks above would catch a
// misspelled or misplaced field.
func TestStrictDecodeCatchesMistakes(t *testing.T) {
	t.Parallel()
	good := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: 1\n"
	require.NoError(t, strictDecode([]byte(good), &appsv1.Deployment{}))
	for _, bad := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 1\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  replicas: 1\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  name: y\n",
	} {
		require.Error(t, strictDecode([]byte(bad), &appsv1.Deployment{}), bad)
	}
}

// pick returns the entries of m whose keys are in keys.
func pick(m, keys map[string]string) map[string]string {
	out := map[string]string{}
	for k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}
