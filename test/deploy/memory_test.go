package deploy

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkOperatorMemory measures what the cluster's other Secrets cost
// the operator: its heap in use (go_memstats_heap_inuse_bytes, the least of
// a few samples, with GOGC=10 so that little of it is garbage) before and after 1,000 Secrets of 8 KiB it has nothing to
// do with appear in the cluster. `make bench` runs it; TRUSTEE_OPERATOR_BIN
// measures another build of kts (an older one, to compare).
//
//	go test -run '^$' -bench OperatorMemory -benchtime 1x ./test/deploy/
func BenchmarkOperatorMemory(b *testing.B) {
	const secrets, size = 1000, 8 << 10
	applyDefault(b)
	// Collected often, the heap in use is close to what is live.
	b.Setenv("GOGC", "10")
	op := startOperator(b, "trustee-system", "trustee-operator", "--metrics-insecure")
	heap := func() float64 {
		least := -1.0
		for range 5 {
			time.Sleep(time.Second)
			v, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", op.metricsPort), "go_memstats_heap_inuse_bytes")
			if err != nil {
				b.Fatal(err)
			}
			if least < 0 || v < least {
				least = v
			}
		}
		return least
	}
	time.Sleep(5 * time.Second) // the caches filled
	before := heap()

	ns := env.Namespace(b)
	data := make([]byte, size)
	for i := range secrets {
		rand.Read(data)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%04d", i), Namespace: ns},
			Data: map[string][]byte{"blob": data}}
		if err := env.Client.Create(b.Context(), s); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(10 * time.Second) // the watches delivered them
	after := heap()
	for range b.N {
	}
	b.ReportMetric(before/(1<<20), "heap-MiB-before")
	b.ReportMetric(after/(1<<20), "heap-MiB-after")
	b.ReportMetric((after-before)/(1<<20), "growth-MiB")
	b.Logf("%d unrelated Secrets of %d KiB: heap in use %.1f MiB before, %.1f MiB after (%+.1f MiB)",
		secrets, size>>10, before/(1<<20), after/(1<<20), (after-before)/(1<<20))
	if op.refused() {
		b.Errorf("the operator was refused something:\n%s", op.logs.String())
	}
	op.stop(b)
}

// scrape reads one unlabelled sample from a Prometheus text endpoint.
func scrape(url, metric string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s (%v)", url, metric, sc.Err())
}
