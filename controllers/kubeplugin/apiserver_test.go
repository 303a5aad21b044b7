package kubeplugin

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/envtestenv"
	"trustee.dev/trustee/test/harness"
)

// TestAgainstAPIServer runs the plugin against a real API server with the
// CRDs. No operator runs: the test writes the KeyTrusteeServer's status as
// the operator does at each step of a switchover, and the plugin follows.
func TestAgainstAPIServer(t *testing.T) {
	env := envtestenv.StartWith(t, envtestenv.Options{
		CRDDirs:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		AddToScheme: []func(*runtime.Scheme) error{trusteev1.AddToScheme},
	})
	ctx := context.Background()

	// newServer creates a KeyTrusteeServer whose status is a healthy pair
	// with member a active.
	newServer := func(t *testing.T) (ns string, k *trusteev1.KeyTrusteeServer) {
		ns = env.Namespace(t)
		k = &trusteev1.KeyTrusteeServer{ObjectMeta: metav1.ObjectMeta{Name: "kts", Namespace: ns},
			Spec: trusteev1.KeyTrusteeServerSpec{TLS: trusteev1.TLSSpec{IssuerRef: &trusteev1.IssuerReference{Name: "selfsigned"}}}}
		if err := env.Client.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
		st := pair("a").Status
		st.ObservedGeneration = k.Generation
		k.Status = st
		if err := env.Client.Status().Update(ctx, k); err != nil {
			t.Fatal(err)
		}
		return ns, k
	}
	// operatorSays writes the Switchover condition and the active member,
	// for the spec's current generation, as the operator would.
	operatorSays := func(t *testing.T, ns, active string, c metav1.Condition) {
		t.Helper()
		k := &trusteev1.KeyTrusteeServer{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts"}, k); err != nil {
			t.Fatal(err)
		}
		st := pair(active, c).Status
		st.ObservedGeneration = k.Generation
		k.Status = st
		if err := env.Client.Status().Update(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	plugin := func(ns string) (*Plugin, *harness.Buffer) {
		out := &harness.Buffer{}
		p, err := New(env.Config, ns, out)
		if err != nil {
			t.Fatal(err)
		}
		p.Poll = 20 * time.Millisecond
		return p, out
	}
	run := func(f func() error) chan error {
		done := make(chan error, 1)
		go func() { done <- f() }()
		return done
	}
	printed := func(t *testing.T, out *harness.Buffer, line string) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, "the plugin prints "+line, func() (bool, string) {
			return strings.Contains(out.String(), line), out.String()
		})
	}

	t.Run("switchover followed to the end", func(t *testing.T) {
		ns, _ := newServer(t)
		p, out := plugin(ns)
		done := run(func() error { return p.Switchover(ctx, "kts", "", true, 30*time.Second) })
		printed(t, out, "spec.activeMember of kts is b: asked the operator to make kts-b-0 the active")
		printed(t, out, "waiting for the operator to act on generation 2 of kts")
		k := &trusteev1.KeyTrusteeServer{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts"}, k); err != nil || k.Spec.ActiveMember != "b" {
			t.Fatalf("spec.activeMember %q, %v", k.Spec.ActiveMember, err)
		}
		steps := []struct {
			active string
			c      metav1.Condition
			line   string
		}{
			{"a", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonFencing, "stopping the active kts-a-0"), "Fencing: stopping the active kts-a-0"},
			{"b", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonPromoting, "member b restarts as the active (kts-b-0)"), "Promoting: member b restarts as the active (kts-b-0)"},
			{"b", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonRejoining, "the new active kts-b-0 serves reads"), "Rejoining: the new active kts-b-0 serves reads"},
		}
		for _, s := range steps {
			operatorSays(t, ns, s.active, s.c)
			printed(t, out, s.line)
		}
		operatorSays(t, ns, "b", cond(trusteev1.ConditionSwitchover, metav1.ConditionFalse, trusteev1.ReasonActiveAsSpecified, "member b (kts-b-0) is the active"))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the plugin did not see the end:\n%s", out)
		}
		if !strings.Contains(out.String(), "member b (kts-b-0) is the active of kts; Ready True") {
			t.Errorf("output:\n%s", out)
		}
	})

	t.Run("switchover the operator refuses", func(t *testing.T) {
		ns, _ := newServer(t)
		p, out := plugin(ns)
		done := run(func() error { return p.Switchover(ctx, "kts", "b", true, 30*time.Second) })
		printed(t, out, "waiting for the operator to act on generation 2")
		operatorSays(t, ns, "a", cond(trusteev1.ConditionSwitchover, metav1.ConditionFalse, trusteev1.ReasonSwitchoverRefused,
			"spec.activeMember asks for b as the active, refused: the passive kts-b-0 is not ready"))
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "the operator refused the switchover: spec.activeMember asks for b as the active, refused: the passive kts-b-0 is not ready; spec.activeMember still asks for b") {
				t.Fatalf("got %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the plugin did not see the refusal:\n%s", out)
		}
	})

	t.Run("switchover not done in time", func(t *testing.T) {
		ns, _ := newServer(t)
		p, _ := plugin(ns)
		err := p.Switchover(ctx, "kts", "b", true, 300*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "the switchover of kts is not done after 300ms (last: waiting for the operator to act on generation 2 of kts)") {
			t.Fatalf("got %v", err)
		}
		// Run again, it follows what was asked rather than asking twice.
		p2, out := plugin(ns)
		if err := p2.Switchover(ctx, "kts", "b", false, 0); err != nil || !strings.Contains(out.String(), "spec.activeMember of kts already asks for b: following the switchover") {
			t.Fatalf("again: %v\n%s", err, out)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		ns, _ := newServer(t)
		cfg, err := clientcmd.LoadFromFile(env.Kubeconfig(t))
		if err != nil {
			t.Fatal(err)
		}
		current := cfg.Contexts[cfg.CurrentContext].DeepCopy()
		current.Namespace = ns
		cfg.Contexts["with-ns"] = current
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name    string
			env     string // KUBECONFIG
			c       Connection
			wantNS  string
			wantErr string
		}{
			{name: "current context, no namespace", c: Connection{Kubeconfig: path}, wantNS: "default"},
			{name: "the context's namespace", c: Connection{Kubeconfig: path, Context: "with-ns"}, wantNS: ns},
			{name: "-n over the context's", c: Connection{Kubeconfig: path, Context: "with-ns", Namespace: "other"}, wantNS: "other"},
			{name: "KUBECONFIG", env: path, c: Connection{Context: "with-ns"}, wantNS: ns},
			{name: "no such context", c: Connection{Kubeconfig: path, Context: "nope"}, wantErr: `context "nope" does not exist`},
			{name: "no such file", c: Connection{Kubeconfig: filepath.Join(t.TempDir(), "missing")}, wantErr: "missing"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Setenv("KUBECONFIG", tc.env)
				p, err := Connect(tc.c, &strings.Builder{})
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("got %v, want the error %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if p.Namespace != tc.wantNS {
					t.Fatalf("namespace %q, want %q", p.Namespace, tc.wantNS)
				}
				if tc.wantNS == ns {
					out := &strings.Builder{}
					p.Out = out
					if err := p.Status(ctx, "kts"); err != nil || !strings.Contains(out.String(), "KeyTrusteeServer "+ns+"/kts") {
						t.Fatalf("status: %v\n%s", err, out)
					}
				}
			})
		}
	})
}
