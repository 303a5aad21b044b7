package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// nodeTimeout bounds each of the Node helpers.
const nodeTimeout = time.Minute

// AddNode creates a simulated Node and waits until kwok has made it Ready
// and kube-controller-manager has lifted its not-ready taint. It fails t
// when that does not happen.
func (c *Cluster) AddNode(t testing.TB, n Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	if err := c.Client.Create(ctx, n.object()); err != nil {
		t.Fatalf("controlplane: creating node %s: %v", n.Name, err)
	}
	c.kwokMu.Lock()
	defer c.kwokMu.Unlock()
	if err := c.waitNodeReady(ctx, n.Name); err != nil {
		t.Fatalf("controlplane: %v", err)
	}
}

// DeleteNode deletes a Node and waits until it is gone, as when a machine
// is removed from a cluster for good. Its pods stay until
// kube-controller-manager's pod garbage collector deletes them, 40 to 60
// seconds later (a fixed quarantine of 40 s, checked every 20 s; no flag
// shortens it), and controllers then create their replacements elsewhere:
// about a minute in all, more on a busy machine. It fails t when the Node
// does not go.
func (c *Cluster) DeleteNode(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	node := &corev1.Node{}
	node.Name = name
	if err := c.Client.Delete(ctx, node); err != nil {
		t.Fatalf("controlplane: deleting node %s: %v", name, err)
	}
	for {
		err := c.Client.Get(ctx, client.ObjectKey{Name: name}, node)
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("controlplane: node %s still there after %v: %v", name, nodeTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StopHeartbeat makes a Node stop answering, as when a machine loses
// power or its network: kwok lets go of it (its annotation goes, and kwok
// restarts, since a running kwok keeps renewing the leases it holds), so
// its lease is no longer renewed and nothing acts for its pods any more.
// After Options.NodeMonitorGracePeriod kube-controller-manager marks it
// NotReady (condition Unknown) and taints it
// node.kubernetes.io/unreachable, NoSchedule and NoExecute (pods without a
// toleration of their own are evicted 300 seconds later, the default
// toleration). Pods on it then stay Terminating when deleted or evicted,
// as on a real dead node, until the Node is deleted or taken back
// (ResumeHeartbeat) or tainted node.kubernetes.io/out-of-service. The
// other Nodes are not affected. It fails t when kwok does not come back.
func (c *Cluster) StopHeartbeat(t testing.TB, name string) {
	t.Helper()
	c.setManaged(t, name, false)
	c.kwokMu.Lock()
	defer c.kwokMu.Unlock()
	if err := c.restartKwok(); err != nil {
		t.Fatalf("controlplane: %v", err)
	}
}

// ResumeHeartbeat undoes StopHeartbeat: kwok takes the Node back (it is
// annotated again, and kwok restarts), renews its lease and acts for its
// pods again. It fails t when the Node does not become Ready again, with
// its not-ready and unreachable taints lifted.
func (c *Cluster) ResumeHeartbeat(t testing.TB, name string) {
	t.Helper()
	c.setManaged(t, name, true)
	c.kwokMu.Lock()
	defer c.kwokMu.Unlock()
	if err := c.restartKwok(); err != nil {
		t.Fatalf("controlplane: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	if err := c.waitNodeReady(ctx, name); err != nil {
		t.Fatalf("controlplane: %v", err)
	}
}

// setManaged adds kwok's annotation to the Node, or removes it.
func (c *Cluster) setManaged(t testing.TB, name string, managed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	value := `null`
	if managed {
		value = fmt.Sprintf("%q", kwokManaged)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, KwokAnnotation, value)
	node := &corev1.Node{}
	node.Name = name
	if err := c.Client.Patch(ctx, node, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("controlplane: annotating node %s: %v", name, err)
	}
}

// restartKwok stops kwok and starts it again, waiting until it serves its
// health check. The caller holds kwokMu.
//
// The leases of the Nodes it manages go in between: a new kwok leaves a
// Node alone, its pods included, while another holder's lease on it lasts,
// and the stopped one's would last for nodeLeaseSeconds more.
func (c *Cluster) restartKwok() error {
	if err := c.kwok.stop(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	for _, n := range nodes.Items {
		if n.Annotations[KwokAnnotation] != kwokManaged {
			continue
		}
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: corev1.NamespaceNodeLease, Name: n.Name}}
		if err := c.Client.Delete(ctx, lease); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting the lease of node %s: %w", n.Name, err)
		}
	}
	if err := c.startKwok(); err != nil {
		return err
	}
	return c.waitKwok(ctx)
}
