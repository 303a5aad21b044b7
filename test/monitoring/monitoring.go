// Package monitoring reads Trustee's alerting rules and Grafana dashboard
// (config/monitoring) for the tests that check them: the queries they run
// and the metrics those name, so that the servers' and the operator's
// tests can check that every metric named is one they export, and this
// package's tests can hand the queries to promtool.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"trustee.dev/trustee/test/toolcache"
)

// Files in config/monitoring.
const (
	RulesFile     = "alerts.rules.yaml"
	RuleTestsFile = "alerts.rules.test.yaml"
	DashboardFile = "grafana-dashboard.json"
)

// Dir is config/monitoring in the repository.
func Dir() (string, error) {
	root, err := toolcache.RepoRoot("config/monitoring/" + RulesFile)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "monitoring"), nil
}

// Rule is one alerting or recording rule of a rule file.
type Rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// RuleGroup is a group of a rule file.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// ReadRules reads a rule file.
func ReadRules(path string) (RuleFile, error) {
	var f RuleFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Groups) == 0 {
		return f, fmt.Errorf("%s has no rule groups", path)
	}
	return f, nil
}

// Query is a query of the dashboard: a panel's target, or a template
// variable's.
type Query struct {
	Where string // such as `panel 5 "Replication lag" target A`
	Expr  string // as written, with Grafana's variables
}

// dashboard is what the tests read of a Grafana dashboard.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// DashboardQueries reads the dashboard at path and returns its panels'
// queries (every panel but a row must have one) and its template
// variables' label_values(...) queries, whose inner selector is returned.
func DashboardQueries(path string) (panels, variables []Query, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, nil, fmt.Errorf("%s is not JSON: %w", path, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		return nil, nil, fmt.Errorf("%s: a dashboard needs a title, a uid and panels", path)
	}
	var walk func(ps []panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			if p.Type == "row" {
				if err := walk(p.Panels); err != nil {
					return err
				}
				continue
			}
			if len(p.Targets) == 0 {
				return fmt.Errorf("%s: panel %d %q has no query", path, p.ID, p.Title)
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("%s: panel %d %q target %s has no expr", path, p.ID, p.Title, t.RefID)
				}
				panels = append(panels, Query{Where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, t.RefID), Expr: t.Expr})
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			return nil, nil, fmt.Errorf("%s: variable %s: query %q is not label_values(SELECTOR, LABEL)", path, v.Name, s)
		}
		variables = append(variables, Query{Where: "variable " + v.Name, Expr: m[1]})
	}
	return panels, variables, nil
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// Expand replaces Grafana's variables in a query by values Prometheus
// parses: the range of $__rate_interval, and a label value for the others.
func Expand(expr string) string {
	expr = strings.ReplaceAll(expr, "$__rate_interval", "5m")
	return grafanaVariable.ReplaceAllString(expr, "value")
}

var grafanaVariable = regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`)

// metricName matches the names of Trustee's metrics: the servers' (kts_)
// and the operator's (trustee_).
var metricName = regexp.MustCompile(`\b(?:kts|trustee)_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)

// MetricNames are the Trustee metrics the queries name, sorted, each once;
// a histogram's series (_bucket, _sum, _count) count as the histogram.
func MetricNames(exprs ...string) []string {
	var out []string
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(n, suffix); ok && strings.HasSuffix(base, "_seconds") {
					n = base
				}
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// UsedMetricNames are the Trustee metrics that the alerting rules and the
// dashboard of config/monitoring name.
func UsedMetricNames() ([]string, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	rules, err := ReadRules(filepath.Join(dir, RulesFile))
	if err != nil {
		return nil, err
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	panels, variables, err := DashboardQueries(filepath.Join(dir, DashboardFile))
	if err != nil {
		return nil, err
	}
	for _, q := range append(panels, variables...) {
		exprs = append(exprs, q.Expr)
	}
	return MetricNames(exprs...), nil
}

// Missing returns the names of used (such as UsedMetricNames) with prefix
// that are not in exported.
func Missing(used []string, prefix string, exported map[string]bool) []string {
	var out []string
	for _, n := range used {
		if strings.HasPrefix(n, prefix) && !exported[n] {
			out = append(out, n)
		}
	}
	return out
}
