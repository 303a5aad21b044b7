package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// backupLastSuccess describes trustee_backup_last_success_timestamp_seconds:
// by BackupSchedule, when its last successful backup finished, as its status
// says (status.lastSuccessfulTime). Its labels are the schedule's namespace
// and name, nothing else.
var backupLastSuccess = prometheus.NewDesc("trustee_backup_last_success_timestamp_seconds",
	"When the BackupSchedule's last successful backup finished (status.lastSuccessfulTime, Unix time); absent before the first.",
	[]string{"namespace", "backupschedule"}, nil)

// backupListTimeout bounds the read of the BackupSchedules at a scrape.
const backupListTimeout = 5 * time.Second

// backupCollector exports the backups' metrics from the BackupSchedules as
// they are at each scrape (read from the manager's cache), so a deleted
// schedule's series goes with it.
type backupCollector struct {
	reader client.Reader
}

// Describe implements prometheus.Collector.
func (c backupCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backupLastSuccess }

// Collect implements prometheus.Collector.
func (c backupCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), backupListTimeout)
	defer cancel()
	var list trusteev1.BackupScheduleList
	if err := c.reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(backupLastSuccess, err)
		return
	}
	for _, m := range backupMetrics(list.Items) {
		ch <- m
	}
}

// backupMetrics are the series the schedules give: one for each that has
// had a successful backup.
func backupMetrics(schedules []trusteev1.BackupSchedule) []prometheus.Metric {
	var out []prometheus.Metric
	for _, bs := range schedules {
		t := bs.Status.LastSuccessfulTime
		if t == nil {
			continue
		}
		out = append(out, prometheus.MustNewConstMetric(backupLastSuccess, prometheus.GaugeValue,
			float64(t.Unix()), bs.Namespace, bs.Name))
	}
	return out
}
