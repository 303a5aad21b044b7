package controllers

import (
	"fmt"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
)

// Members of a pair. Their names stay; their roles (config.RoleActive,
// config.RolePassive) change with a switchover.
const (
	memberA = contract.MemberA
	memberB = contract.MemberB
)

// otherMember is the member that is not m.
func otherMember(m string) string {
	if m == memberA {
		return memberB
	}
	return memberA
}

// Ports of a member's pod.
const (
	portAPI        = 11371
	portAdmin      = 11373
	portPostgreSQL = 5432
)

// Labels the operator sets.
const (
	labelName      = "app.kubernetes.io/name"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelComponent = "app.kubernetes.io/component"
	labelServer    = "trustee.dev/server"
	// labelInstance is what an older operator put on everything; it is
	// taken off the members' claims (dropInstanceLabel).
	labelInstance = "app.kubernetes.io/instance"
	labelMember   = "trustee.dev/member"
	labelRole     = "trustee.dev/role"
	labelBackup   = "trustee.dev/backup-schedule"

	managedBy       = "trustee-operator"
	componentServer = "server"
	componentBackup = "backup"
)

// Where a member's pod mounts what (docs/OPERATOR.md).
const (
	mountData        = "/var/lib/kts"
	stateDir         = mountData + "/state"
	mountIdentity    = "/etc/kts/identity"
	mountState       = "/etc/kts/state"
	mountReplication = "/etc/kts/replication"
	mountTLS         = "/etc/kts/tls"
	mountAdminCA     = "/etc/kts/admin-ca"
	mountConfig      = "/etc/kts/config"
	mountRun         = "/var/run/postgresql"
	mountHSM         = "/etc/kts/hsm"
	mountSMTPAuth    = "/etc/kts/smtp-auth"
	mountSMTPCA      = "/etc/kts/smtp-ca"
)

// serverNames are the names of everything a KeyTrusteeServer becomes.
type serverNames struct {
	server, namespace string
}

func namesOf(k *trusteev1.KeyTrusteeServer) serverNames {
	return serverNames{server: k.Name, namespace: k.Namespace}
}

func (n serverNames) Identity() string          { return n.server + "-identity" }
func (n serverNames) State() string             { return n.server + "-state" }
func (n serverNames) Replication() string       { return n.server + "-replication" }
func (n serverNames) Config() string            { return n.server + "-config" }
func (n serverNames) ServerCertificate() string { return n.server + "-server" }
func (n serverNames) ServerTLSSecret() string   { return n.server + "-server-tls" }
func (n serverNames) AdminSelfSigned() string   { return n.server + "-admin-selfsigned" }
func (n serverNames) AdminCA() string           { return n.server + "-admin-ca" }
func (n serverNames) OperatorAdmin() string     { return n.server + "-operator-admin" }
func (n serverNames) Members() string           { return n.server + "-members" }
func (n serverNames) ReadWrite() string         { return n.server + "-rw" }
func (n serverNames) Read() string              { return n.server + "-ro" }
func (n serverNames) PDB() string               { return n.server }
func (n serverNames) NetworkPolicy() string     { return n.server }

// StatefulSet is the name of a member's StatefulSet (and Service).
func (n serverNames) StatefulSet(member string) string { return n.server + "-" + member }

// Pod is the name of a member's only pod.
func (n serverNames) Pod(member string) string { return n.StatefulSet(member) + "-0" }

// Claim is the name of the PersistentVolumeClaim its StatefulSet made for
// a member's pod.
func (n serverNames) Claim(member string) string { return claimTemplate + "-" + n.Pod(member) }

// PodHost is a member pod's stable DNS name inside the cluster.
func (n serverNames) PodHost(member string) string {
	return fmt.Sprintf("%s.%s.%s.svc", n.Pod(member), n.Members(), n.namespace)
}

// ServiceHost is a Service's DNS name inside the cluster.
func (n serverNames) ServiceHost(svc string) string {
	return fmt.Sprintf("%s.%s.svc", svc, n.namespace)
}

// labels are the labels of every object of the server. Not
// app.kubernetes.io/instance: Argo CD's label tracking would count objects
// carrying it as part of an Application of the server's name, and prune
// them — among them what outlives the server (its identity, state and
// replication Secrets, the members' claims).
func (n serverNames) labels() map[string]string {
	return map[string]string{labelName: "trustee", labelServer: n.server, labelManagedBy: managedBy}
}

// memberLabels select a member's pod; serverSelector selects both members;
// peerSelector also the server's backup Jobs, which read a member's
// PostgreSQL.
func (n serverNames) memberLabels(member string) map[string]string {
	return map[string]string{labelServer: n.server, labelComponent: componentServer, labelMember: member}
}

func (n serverNames) serverSelector() map[string]string {
	return map[string]string{labelServer: n.server, labelComponent: componentServer}
}

func (n serverNames) peerSelector() map[string]string {
	return map[string]string{labelServer: n.server}
}

func mergeLabels(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// OperatorPodLabels are the labels of the operator's own pods, whatever
// the release or its nameOverride (config/manager, the Helm chart): the
// servers' NetworkPolicy admits only them to the admin port.
var OperatorPodLabels = map[string]string{"trustee.dev/operator": "true"}
