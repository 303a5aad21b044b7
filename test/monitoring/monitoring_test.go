package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"trustee.dev/trustee/test/toolcache"
)

// promtool runs promtool with args in dir and returns its output; it fails
// the test when promtool cannot be had.
func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	bin, err := toolcache.Promtool.Find(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func monitoringDir(t *testing.T) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Prometheus' own rule parser accepts the alerting rules, and its unit
// tests (series in, alerts out) pass.
func TestAlertRulesWithPromtool(t *testing.T) {
	dir := monitoringDir(t)
	if out, err := promtool(t, dir, "check", "rules", RulesFile); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", RulesFile, err, out)
	}
	if out, err := promtool(t, dir, "test", "rules", RuleTestsFile); err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", RuleTestsFile, err, out)
	} else {
		t.Log(out)
	}
}

// ruleTests is what this test reads of a promtool unit test file.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name      string `yaml:"name"`
		AlertTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// Every alert has a unit test in which it fires and one in which it does
// not.
func TestEveryAlertIsTestedFiringAndNot(t *testing.T) {
	dir := monitoringDir(t)
	rules, err := ReadRules(filepath.Join(dir, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, RuleTestsFile))
	if err != nil {
		t.Fatal(err)
	}
	var tests ruleTests
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tests.RuleFiles, []string{RulesFile}) {
		t.Errorf("%s tests %v, want [%s]", RuleTestsFile, tests.RuleFiles, RulesFile)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: tested firing %v, not firing %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
		}
	}
}

// recordingRules writes queries as recording rules into a temporary rule
// file, so that promtool parses them as Prometheus would.
func recordingRules(t *testing.T, queries []Query) string {
	t.Helper()
	var f RuleFile
	g := RuleGroup{Name: "dashboard"}
	for i, q := range queries {
		g.Rules = append(g.Rules, Rule{Record: fmt.Sprintf("trustee_dashboard:query_%d", i), Expr: Expand(q.Expr)})
	}
	f.Groups = []RuleGroup{g}
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The dashboard is valid JSON, every panel has a query, and every query
// parses as PromQL (through promtool, as recording rules); a query that
// does not parse is refused by that check.
func TestDashboardQueriesParse(t *testing.T) {
	dir := monitoringDir(t)
	panels, variables, err := DashboardQueries(filepath.Join(dir, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) < 10 || len(variables) != 2 {
		t.Fatalf("%d panel queries and %d variables, want at least 10 and 2", len(panels), len(variables))
	}
	all := append(panels, variables...)
	if out, err := promtool(t, dir, "check", "rules", recordingRules(t, all)); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
	broken := append(all, Query{Where: "broken", Expr: "sum by (pod (rate(kts_http_requests_total[$__rate_interval]))"})
	if out, err := promtool(t, dir, "check", "rules", recordingRules(t, broken)); err == nil {
		t.Fatalf("promtool accepted a query that does not parse:\n%s", out)
	}
	// Every part of the pair the dashboard is for.
	names := MetricNames(func() []string {
		var e []string
		for _, q := range all {
			e = append(e, q.Expr)
		}
		return e
	}()...)
	for _, want := range []string{"kts_replication_in_sync", "kts_replication_lag_bytes", "kts_writable", "kts_http_requests_total",
		"kts_http_request_duration_seconds", "kts_audit_records_total", "kts_audit_failures_total", "kts_audit_checkpoint_timestamp_seconds",
		"trustee_backup_last_success_timestamp_seconds", "kts_tls_certificate_expiry_timestamp_seconds"} {
		if !slices.Contains(names, want) {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
}

func TestMetricNames(t *testing.T) {
	got := MetricNames(`histogram_quantile(0.99, sum by (le) (rate(kts_http_request_duration_seconds_bucket{a="b"}[5m])))`,
		`time() - trustee_backup_last_success_timestamp_seconds > 26 * 3600`, `up{keytrusteeserver!=""} == 0 and kts_writable`,
		`kts_mail_sent_total`)
	want := []string{"kts_http_request_duration_seconds", "kts_mail_sent_total", "kts_writable", "trustee_backup_last_success_timestamp_seconds"}
	if !slices.Equal(got, want) {
		t.Fatalf("MetricNames = %v, want %v", got, want)
	}
	if m := Missing(want, "kts_", map[string]bool{"kts_writable": true, "kts_mail_sent_total": true}); !slices.Equal(m, []string{"kts_http_request_duration_seconds"}) {
		t.Fatalf("Missing = %v", m)
	}
}

// The PrometheusRule of config/monitoring and the chart's copies are the
// sources' (hack/sync-monitoring.sh).
func TestGeneratedCopiesAreCurrent(t *testing.T) {
	dir := monitoringDir(t)
	rules, err := ReadRules(filepath.Join(dir, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Spec       RuleFile `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || !reflect.DeepEqual(pr.Spec, rules) {
		t.Errorf("prometheusrule.yaml is not the PrometheusRule of %s: run make manifests", RulesFile)
	}
	chart := filepath.Join(dir, "..", "..", "charts", "trustee-operator", "files")
	for _, f := range []string{RulesFile, DashboardFile} {
		src, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := os.ReadFile(filepath.Join(chart, f))
		if err != nil || !bytes.Equal(src, cp) {
			t.Errorf("the chart's files/%s is not config/monitoring's (%v): run make manifests", f, err)
		}
	}
}

// The chart renders the PrometheusRule and the dashboard's ConfigMap only
// when asked, with the rules and the dashboard of config/monitoring.
func TestChartRendersTheAlertsAndTheDashboard(t *testing.T) {
	dir := monitoringDir(t)
	helm, err := toolcache.Helm.Find(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(dir, "..", "..", "charts", "trustee-operator")
	render := func(args ...string) map[string]map[string]any {
		t.Helper()
		out, err := exec.Command(helm, append([]string{"template", "t", chart, "--namespace", "trustee-system"}, args...)...).Output()
		if err != nil {
			t.Fatalf("helm template %v: %v", args, err)
		}
		objs := map[string]map[string]any{}
		dec := yaml.NewDecoder(bytes.NewReader(out))
		for {
			var o map[string]any
			if err := dec.Decode(&o); err != nil {
				break
			}
			if o != nil {
				md, _ := o["metadata"].(map[string]any)
				objs[fmt.Sprintf("%v/%v", o["kind"], md["name"])] = o
			}
		}
		return objs
	}
	for key := range render() {
		if strings.HasPrefix(key, "PrometheusRule/") || strings.HasSuffix(key, "-dashboard") {
			t.Errorf("rendered by default: %s", key)
		}
	}
	objs := render("--set", "metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true",
		"--set", "metrics.prometheusRule.labels.release=prometheus")
	pr := objs["PrometheusRule/t-trustee-operator"]
	if pr == nil {
		t.Fatalf("no PrometheusRule t-trustee-operator among %v", keys(objs))
	}
	spec, _ := yaml.Marshal(pr["spec"])
	var got RuleFile
	if err := yaml.Unmarshal(spec, &got); err != nil {
		t.Fatal(err)
	}
	want, err := ReadRules(filepath.Join(dir, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's PrometheusRule holds other rules than %s", RulesFile)
	}
	if md := pr["metadata"].(map[string]any); md["labels"].(map[string]any)["release"] != "prometheus" {
		t.Errorf("PrometheusRule labels %v lack release: prometheus", md["labels"])
	}
	cm := objs["ConfigMap/t-trustee-operator-dashboard"]
	if cm == nil {
		t.Fatalf("no ConfigMap t-trustee-operator-dashboard among %v", keys(objs))
	}
	if l := cm["metadata"].(map[string]any)["labels"].(map[string]any); l["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", l)
	}
	dashboard, err := os.ReadFile(filepath.Join(dir, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	if data := cm["data"].(map[string]any)["trustee.json"]; strings.TrimSpace(fmt.Sprint(data)) != strings.TrimSpace(string(dashboard)) {
		t.Errorf("the ConfigMap's trustee.json is not %s", DashboardFile)
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// kubectl kustomize config/monitoring makes the PrometheusRule and the
// dashboard's ConfigMap for Grafana's sidecar.
func TestKustomizeRendersTheAlertsAndTheDashboard(t *testing.T) {
	dir := monitoringDir(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH: %v", err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	dashboard, err := os.ReadFile(filepath.Join(dir, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadRules(filepath.Join(dir, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name   string            `yaml:"name"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec RuleFile          `yaml:"spec"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&o); err != nil {
			break
		}
		seen[o.Kind] = true
		switch o.Kind {
		case "PrometheusRule":
			if !reflect.DeepEqual(o.Spec, want) {
				t.Errorf("the PrometheusRule holds other rules than %s", RulesFile)
			}
		case "ConfigMap":
			if o.Metadata.Labels["grafana_dashboard"] != "1" || o.Data["trustee.json"] != string(dashboard) {
				t.Errorf("ConfigMap %s: labels %v, trustee.json the dashboard %v", o.Metadata.Name, o.Metadata.Labels, o.Data["trustee.json"] == string(dashboard))
			}
		default:
			t.Errorf("unexpected %s %s", o.Kind, o.Metadata.Name)
		}
	}
	if !seen["PrometheusRule"] || !seen["ConfigMap"] {
		t.Errorf("kubectl kustomize made %v, want a PrometheusRule and a ConfigMap", seen)
	}
}
