package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"trustee.dev/trustee/test/memberpods"
	"trustee.dev/trustee/test/monitoring"
)

// scrape reads a server's /metrics as Prometheus does, and the expiry of
// the certificate the server presented on that connection.
func scrape(url string) (map[string]*dto.MetricFamily, time.Time, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test reads the certificate itself
	}}
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return nil, time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, time.Time{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, time.Time{}, err
	}
	return families, resp.TLS.PeerCertificates[0].NotAfter, nil
}

// gauge is the value of the series of name whose label chain (when given)
// matches; ok is false when there is none.
func gauge(families map[string]*dto.MetricFamily, name, chain string) (v float64, ok bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		match := chain == ""
		for _, l := range m.GetLabel() {
			match = match || (l.GetName() == "chain" && l.GetValue() == chain)
		}
		if match {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsOfAPair scrapes a real pair: the active says its passive is in
// sync and writable, and says otherwise while the passive's database is
// down; both export the expiry of the certificate they serve and when
// their audit chains were last signed.
func TestMetricsOfAPair(t *testing.T) {
	root := memberpods.RootDir(t)
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	urls := initPair(t, [2]string{active, passive})
	startServer(t, active)
	startServer(t, passive)

	want := func(url, what string, cond func(map[string]*dto.MetricFamily, time.Time) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			families, expiry, err := scrape(url)
			if err != nil {
				t.Logf("scrape %s: %v", url, err)
				return false
			}
			return cond(families, expiry)
		})
	}
	is := func(families map[string]*dto.MetricFamily, name string, want float64) bool {
		v, ok := gauge(families, name, "")
		return ok && v == want
	}
	started := float64(time.Now().Unix())
	want(urls[0], "the active: in sync, writable, its certificate's expiry and both chains signed", func(f map[string]*dto.MetricFamily, expiry time.Time) bool {
		db, dbOK := gauge(f, "kts_audit_checkpoint_timestamp_seconds", "db")
		journal, journalOK := gauge(f, "kts_audit_checkpoint_timestamp_seconds", "journal")
		return is(f, "kts_replication_in_sync", 1) && is(f, "kts_writable", 1) &&
			is(f, "kts_tls_certificate_expiry_timestamp_seconds", float64(expiry.Unix())) &&
			dbOK && journalOK && db >= started-60 && journal >= started-60
	})
	want(urls[1], "the passive: its certificate's expiry and its journal signed, no pair state of its own", func(f map[string]*dto.MetricFamily, expiry time.Time) bool {
		_, inSync := gauge(f, "kts_replication_in_sync", "")
		_, db := gauge(f, "kts_audit_checkpoint_timestamp_seconds", "db")
		_, journal := gauge(f, "kts_audit_checkpoint_timestamp_seconds", "journal")
		return !inSync && !db && journal && is(f, "kts_tls_certificate_expiry_timestamp_seconds", float64(expiry.Unix()))
	})

	kts(t, "db", "stop", "--confdir", passive)
	want(urls[0], "the active: out of sync and refusing writes without its passive", func(f map[string]*dto.MetricFamily, _ time.Time) bool {
		return is(f, "kts_replication_in_sync", 0) && is(f, "kts_writable", 0)
	})
	kts(t, "db", "start", "--confdir", passive)
	want(urls[0], "the active: in sync again once the passive is back", func(f map[string]*dto.MetricFamily, _ time.Time) bool {
		return is(f, "kts_replication_in_sync", 1) && is(f, "kts_writable", 1)
	})

	// Every server metric the alerts and the dashboard name is one the
	// pair exports (a request each first, for the request metrics).
	used, err := monitoring.UsedMetricNames()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, url := range urls {
		curl(t, "-k", url+"/?a=fingerprint")
		families, _, err := scrape(url)
		if err != nil {
			t.Fatal(err)
		}
		for name := range families {
			exported[name] = true
		}
	}
	if missing := monitoring.Missing(used, "kts_", exported); len(missing) > 0 {
		t.Errorf("config/monitoring names server metrics the servers do not export: %v", missing)
	}
}
