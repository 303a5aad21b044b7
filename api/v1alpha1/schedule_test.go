package v1alpha1

import (
	"regexp"
	"strings"
	"testing"

	"github.com/robfig/cron/v3"
)

// scheduleRegexps returns the regular expressions of the CEL rule on
// BackupSchedule's spec.schedule, read from the generated CRD: the rule is
// self.matches('...') || self.matches('...') ..., and CEL's matches uses RE2,
// as Go's regexp does.
func scheduleRegexps(t testing.TB) []*regexp.Regexp {
	t.Helper()
	crd := readCRD(t, "trustee.dev_backupschedules.yaml")
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	rules := spec.Properties["schedule"].XValidations
	if len(rules) != 1 {
		t.Fatalf("spec.schedule has %d CEL rules, want 1", len(rules))
	}
	var res []*regexp.Regexp
	for _, m := range regexp.MustCompile(`self\.matches\('([^']*)'\)`).FindAllStringSubmatch(rules[0].Rule, -1) {
		res = append(res, regexp.MustCompile(m[1]))
	}
	if len(res) != 3 {
		t.Fatalf("found %d regular expressions in %q, want 3 (fields, descriptors, @every)", len(res), rules[0].Rule)
	}
	return res
}

func scheduleAccepted(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// TestScheduleRule checks the admission rule for cron schedules against a
// table, and against robfig/cron's standard parser, which the CronJob
// controller uses: whatever the rule accepts, a CronJob must accept too.
func TestScheduleRule(t *testing.T) {
	res := scheduleRegexps(t)
	for _, tc := range []struct {
		schedule string
		valid    bool
		// stricter says why the rule refuses what robfig accepts.
		stricter string
	}{
		{"*/30 * * * *", true, ""},
		{"0 2 * * *", true, ""},
		{"15 2 * * MON-FRI", true, ""},
		{"0 0 1 jan,jul *", true, ""},
		{"0-59/15 0-23 1-31 1-12 0-6", true, ""},
		{"5 4 ? * sun", true, ""},
		{"0 0 * * 0,6", true, ""},
		{"00 05 01 01 *", true, ""},
		{"5/10 * * * *", true, ""},
		{"  0 0 * * *  ", true, ""},
		{"0 0 L * *", false, ""},
		{"@daily", true, ""},
		{"@yearly", true, ""},
		{"@midnight", true, ""},
		{"@every 6h", true, ""},
		{"@every 1h30m", true, ""},
		{"@every 1.5h", true, ""},
		{"", false, ""},
		{"* * * *", false, ""},
		{"* * * * * *", false, ""},
		{"60 * * * *", false, ""},
		{"* 24 * * *", false, ""},
		{"* * 0 * *", false, ""},
		{"* * 32 * *", false, ""},
		{"* * * 13 *", false, ""},
		{"* * * * 7", false, ""},
		{"*/0 * * * *", false, ""},
		{"1,,2 * * * *", false, "an empty list item is a typo"},
		{"* * * * MON-", false, ""},
		{"0 0 * * FOO", false, ""},
		{"a b c d e", false, ""},
		{"@reboot", false, ""},
		{"@every", false, ""},
		{"@every 5", false, ""},
		{"@daily ", false, ""},
		{"CRON_TZ=UTC 0 0 * * *", false, "the time zone belongs in spec.timeZone, as CronJob requires"},
		{"TZ=Europe/Paris 0 0 * * *", false, "the time zone belongs in spec.timeZone, as CronJob requires"},
		{"? * * * *", false, "? is only for day of month and day of week"},
		{"0\t0 * * *", false, "fields are separated by spaces"},
	} {
		t.Run(tc.schedule, func(t *testing.T) {
			got := scheduleAccepted(res, tc.schedule)
			if got != tc.valid {
				t.Errorf("rule accepts %q: %v, want %v", tc.schedule, got, tc.valid)
			}
			_, err := cron.ParseStandard(tc.schedule)
			switch {
			case got && err != nil:
				t.Errorf("rule accepts %q, which CronJob refuses: %v", tc.schedule, err)
			case !got && err == nil && tc.stricter == "":
				t.Errorf("rule refuses %q, which CronJob accepts; if that is meant, say why in the table", tc.schedule)
			}
		})
	}
}

// FuzzScheduleRule checks that a schedule the admission rule accepts is one
// the CronJob controller (robfig/cron's standard parser) accepts too. The
// one known gap: a range whose start is after its end ("30-10") passes the
// rule, and the operator reports it instead.
func FuzzScheduleRule(f *testing.F) {
	for _, s := range []string{"*/30 * * * *", "15 2 * * MON-FRI", "@every 1h30m", "0 0 1 jan,jul ?", "@daily"} {
		f.Add(s)
	}
	res := scheduleRegexps(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !scheduleAccepted(res, s) {
			return
		}
		if _, err := cron.ParseStandard(s); err != nil && !strings.Contains(err.Error(), "beyond end of range") {
			t.Errorf("rule accepts %q, which CronJob refuses: %v", s, err)
		}
	})
}
